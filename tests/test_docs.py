"""The front door and the manual stay true: README.md is short, every link resolves, and every command written in
a code block of README.md or docs/*.md exists (make targets, `python -m` modules, their options).

Nothing is built: make targets are read from the Makefile's rule lines (`make -n` would run the venv set-up and
sample generators), modules are found with importlib.util.find_spec, and each entry module of pipeline/, tools/
and exo2ego_model/ runs `--help` once (in parallel), whose output is also what options are checked against.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 200
ENTRY_PACKAGES = ("pipeline", "tools", "exo2ego_model")

FENCE = re.compile(r"^(```+|~~~+)[^\n]*\n(.*?)^\1[ \t]*$", re.M | re.S)
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
MODULE_CALL = re.compile(r"(?:\bpython[\d.]*|\btorchrun\b[^\n]*?)\s+-m\s+([A-Za-z_][\w.]*)")
MAKE_RULE = re.compile(r"^([A-Za-z0-9_.%/-]+(?:[ \t]+[A-Za-z0-9_.%/-]+)*)[ \t]*:(?![=:])")


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _prose(text: str) -> str:
    """The page without fenced code blocks and inline code (where a `[x](y)` is not a link)."""
    text = FENCE.sub("", text)
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", text, flags=re.S)


def _code_blocks(text: str) -> list[str]:
    return [m.group(2) for m in FENCE.finditer(text)]


def _commands() -> list[tuple[str, str]]:
    """(page, command line) for every line of every fenced code block, backslash continuations joined."""
    found = []
    for page in PAGES:
        for block in _code_blocks(page.read_text()):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                if line.strip():
                    found.append((_rel(page), line.strip()))
    return found


def _words(command: str) -> list[str]:
    """Shell words of a command line, comments dropped; optional parts written `[--x N]` count as written."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:  # an unbalanced quote in an example: fall back to whitespace
        words = command.split("#", 1)[0].split()
    return [w.strip("[]") for w in words if w.strip("[]")]


def _make_targets() -> set[str]:
    targets = set()
    for line in (REPO / "Makefile").read_text().splitlines():
        if line.startswith(("\t", "#", " ")) or "$(" in line.split(":", 1)[0]:
            continue
        m = MAKE_RULE.match(line)
        if m:
            targets.update(t for t in m.group(1).split() if not t.startswith("."))
    return targets


def _make_recipes() -> dict[str, list[str]]:
    """target -> its recipe lines (continuations joined)."""
    recipes: dict[str, list[str]] = {}
    current: list[str] = []
    text = re.sub(r"\\\n", " ", (REPO / "Makefile").read_text())
    for line in text.splitlines():
        m = MAKE_RULE.match(line)
        if m and "$(" not in line.split(":", 1)[0]:
            current = []
            for target in m.group(1).split():
                recipes[target] = current
        elif line.startswith("\t"):
            current.append(line.strip())
    return recipes


def _make_calls() -> list[tuple[str, str, list[str]]]:
    """(page, target, arguments) of every `make TARGET ...` command in a code block."""
    calls = []
    for page, line in _commands():
        words = _words(line)
        if not words or words[0] != "make":
            continue
        rest = [w for w in words[1:] if not w.startswith("-")]
        targets = [w for w in rest if "=" not in w]
        calls.append((page, targets[0] if targets else "", [w for w in rest if "=" in w]))
    return calls


def _module_calls() -> list[tuple[str, str, list[str]]]:
    """(page, module, the words after it) of every `python -m MODULE ...` (or torchrun -m) in a code block."""
    calls = []
    for page, line in _commands():
        for m in MODULE_CALL.finditer(line):
            if m.group(1).endswith(".") or line[m.end() : m.end() + 1] in ("<", "&"):
                continue  # a pattern such as `python -m pipeline.<dataset>`, not a command
            calls.append((page, m.group(1), _words(line[m.end() :])))
    return calls


def _options(words: list[str]) -> list[str]:
    """The `--name` options among shell words (`--name=value` counts; a quoted value such as
    `--build-args '--frames 16'` is one word, not an option of this command)."""
    names = (w.split("=", 1)[0] for w in words)
    return [n for n in names if re.fullmatch(r"--[A-Za-z0-9][\w-]*", n)]


def _is_entry(module: str) -> bool:
    return module.split(".")[0] in ENTRY_PACKAGES


def _modules_run_by(target: str) -> list[str]:
    """The entry modules a make target runs with $(ARGS) appended (what ARGS="--x ..." reaches)."""
    found = []
    for line in _make_recipes().get(target, []):
        if "$(ARGS)" in line:
            found += [m for m in re.findall(r"-m\s+([A-Za-z_][\w.]*)", line) if _is_entry(m)]
    return sorted(set(found))


def _modules_needing_help() -> list[str]:
    modules = {module for _, module, _ in _module_calls() if _is_entry(module)}
    for _, target, assignments in _make_calls():
        if any(a.startswith("ARGS=") for a in assignments):
            modules.update(_modules_run_by(target))
    return sorted(modules)


def _run_help(module: str) -> tuple[int, str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            cwd=REPO, capture_output=True, text=True, timeout=180, env=env,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return -1, "timed out"
    return done.returncode, done.stdout + done.stderr


@cache
def _help_outputs() -> dict[str, tuple[int, str]]:
    """module -> (exit status, output) of `python -m module --help`, each module once, a few at a time."""
    modules = [m for m in _modules_needing_help() if importlib.util.find_spec(m) is not None]
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        return dict(zip(modules, pool.map(_run_help, modules), strict=True))


def _has_option(help_text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text) is not None


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces -> hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}


# ------------------------------------------------------------------------------------------------------ tests


def test_readme_is_at_most_200_lines():
    n = len(README.read_text().splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines (at most {README_MAX_LINES}: the manual is docs/)"


def test_the_manual_pages_exist_and_readme_links_each():
    pages = {p.name for p in PAGES[1:]}
    expected = {
        "egoexoclip",
        "egoit",
        "egobench",
        "egoclip",
        "training",
        "evaluation",
        "performance",
        "cluster",
    }
    assert {f"{name}.md" for name in expected | {"design", "tools"}} <= pages
    readme = README.read_text()
    assert not [p for p in sorted(pages) if f"](docs/{p})" not in readme], (
        "README.md must link every docs page"
    )


def test_every_relative_link_points_at_an_existing_file():
    broken = []
    for page in PAGES:
        for target in LINK.findall(_prose(page.read_text())):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
                continue
            path_part, _, anchor = target.partition("#")
            dest = (page.parent / path_part).resolve() if path_part else page
            if not dest.exists():
                broken.append(f"{_rel(page)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{_rel(page)}: {target} (no heading #{anchor} in {dest.name})")
    assert not broken, "\n".join(broken)


def test_every_make_target_in_a_code_block_is_a_makefile_target():
    targets = _make_targets()
    assert {"build-egoexoclip", "test"} <= targets  # the two quick-start commands
    wrong = [
        f"{page}: make {target or '(no target)'}"
        for page, target, _ in _make_calls()
        if target not in targets
    ]
    assert not wrong, "not targets of the Makefile:\n" + "\n".join(wrong)


def test_readme_quick_start_keeps_the_two_commands():
    commands = [line for page, line in _commands() if page == "README.md"]
    assert any(c.startswith("make build-egoexoclip") for c in commands)
    assert any(c.startswith("make test") for c in commands)  # CI runs `make test` (.ci/run)


def test_every_python_module_in_a_code_block_is_importable():
    calls = _module_calls()
    assert calls
    missing = sorted(
        {f"{page}: python -m {m}" for page, m, _ in calls if importlib.util.find_spec(m) is None}
    )
    assert not missing, "no such module:\n" + "\n".join(missing)


def test_every_entry_module_answers_help():
    outputs = _help_outputs()
    assert any(m.startswith("pipeline.") for m in outputs)
    failed = [f"python -m {m} --help: exit {rc}\n{out[-600:]}" for m, (rc, out) in outputs.items() if rc != 0]
    assert not failed, "\n".join(failed)


def test_every_option_written_after_a_command_is_one_of_its_options():
    outputs = _help_outputs()
    wrong = []
    for page, module, words in _module_calls():
        if module not in outputs:
            continue
        rc, text = outputs[module]
        wrong += [
            f"{page}: python -m {module} {o}" for o in _options(words) if rc != 0 or not _has_option(text, o)
        ]
    for page, target, assignments in _make_calls():
        args = [a.split("=", 1)[1] for a in assignments if a.startswith("ARGS=")]
        for module in _modules_run_by(target) if args else []:
            rc, text = outputs.get(module, (1, ""))
            for o in _options(_words(" ".join(args))):
                if rc != 0 or not _has_option(text, o):
                    wrong.append(f"{page}: make {target} ARGS=... {o} (not an option of python -m {module})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("dataset", ["egoexoclip", "egoit", "egobench", "egoclip"])
def test_each_builder_command_is_documented(dataset):
    documented = {m for page, m, _ in _module_calls() if page == f"docs/{dataset}.md"}
    assert f"pipeline.{dataset}" in documented, (
        f"docs/{dataset}.md shows no `python -m pipeline.{dataset}` command"
    )


@pytest.mark.parametrize("dataset", ["egoexoclip", "egoit", "egobench", "egoclip"])
def test_every_builder_option_is_documented(dataset):
    """The other way round: each option a builder's --help lists is in its page (runner flags: cluster.md)."""
    rc, text = _help_outputs().get(f"pipeline.{dataset}", (1, ""))
    assert rc == 0, text[-600:]
    listed = set(re.findall(r"^\s{2}(--[A-Za-z0-9][\w-]*)", text, re.M)) - {"--help"}
    assert "--out" in listed
    pages = (REPO / "docs" / f"{dataset}.md").read_text() + (REPO / "docs" / "cluster.md").read_text()
    undocumented = sorted(o for o in listed if not _has_option(pages, o))
    assert not undocumented, (
        f"options of python -m pipeline.{dataset} missing from docs/{dataset}.md: {undocumented}"
    )
