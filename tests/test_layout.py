"""The bundled Ego-ExoClip build's bytes are pinned: the split of pipeline/ into core + per-dataset packages
changed none of them, and nothing may change them unnoticed.

tests/data/egoexoclip_digests.json holds the sha256 of the bundled build's shards and manifests: recorded before
the move (commit 1c34a24) and reproduced by it, then updated once on purpose (see its _comment: rejected
narrations no longer feed alpha). The same options must give the same bytes.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import pytest

from pipeline.egoexoclip import main

RECORDED = json.loads((Path(__file__).parent / "data" / "egoexoclip_digests.json").read_text())["builds"]


@pytest.mark.parametrize("build", sorted(RECORDED))
def test_bundled_build_bytes_unchanged_by_the_move(sample_root, tmp_path, build):
    recorded = RECORDED[build]
    out = tmp_path / build
    assert main(["--root", sample_root, "--out", str(out), *recorded["args"]]) == 0
    got = {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in recorded["sha256"]}
    assert got == recorded["sha256"]
    assert sorted(p.name for p in out.glob("*.tar")) == sorted(
        n for n in recorded["sha256"] if n.endswith(".tar")
    )


def test_packages_are_split_by_role():
    import pipeline.core.clips
    import pipeline.core.writer
    import pipeline.egoexoclip.writer

    # the core knows no dataset: nothing in pipeline/core imports a dataset package
    core = Path(pipeline.core.writer.__file__).parent
    for path in core.rglob("*.py"):
        text = path.read_text()
        for pkg in ("egoexoclip", "egoit", "egobench", "egoclip"):
            for stmt in (f"from pipeline.{pkg}", f"import pipeline.{pkg}", f"from pipeline import {pkg}"):
                assert stmt not in text, f"{path} imports pipeline.{pkg}"
    assert pipeline.egoexoclip.writer.write_shard is pipeline.core.writer.write_shard


# ------------------------------------------------------------------------------------------------ import graph
REPO = Path(__file__).resolve().parents[1]
DATASETS = ("egoexoclip", "egoit", "egobench", "egoclip")
# being moved to tools/ by the split of issue 16 (they import builder internals on purpose: benches)
NOT_MODEL_CODE = {"exo2ego_model.bench_loader", "exo2ego_model.bench_train"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(*tops: str) -> dict[str, Path]:
    return {_module_name(p): p for top in tops for p in sorted((REPO / top).rglob("*.py"))}


def _run_at_import(node: ast.AST):
    """The nodes that run when the module is imported: not function bodies, not `if TYPE_CHECKING:` blocks."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            yield from (n for stmt in child.orelse for n in [stmt, *_run_at_import(stmt)])
            continue
        yield child
        yield from _run_at_import(child)


def _imports(name: str, path: Path, known: set[str], top_level_only: bool) -> set[str]:
    """The modules `name` imports (resolved: relative imports, `from pkg import submodule`); with
    top_level_only, only the imports that run when the module is imported (not those inside functions)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _run_at_import(tree) if top_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            subs = {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known}
            found.update(subs or {base})
    return found


def _dataset_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "pipeline" and parts[1] in DATASETS else None


def test_import_graph_keeps_core_datasets_and_model_apart():
    modules = _modules("pipeline", "exo2ego_model")
    known = set(modules)
    wrong = []
    for name, path in modules.items():
        pipeline_imports = {m for m in _imports(name, path, known, False) if m.split(".")[0] == "pipeline"}
        if name.startswith("pipeline.core"):  # the core knows no dataset
            wrong += [f"{name} imports {m}" for m in pipeline_imports if _dataset_of(m)]
        elif own := _dataset_of(name):  # a dataset imports the core and itself, nothing of another dataset
            wrong += [f"{name} imports {m}" for m in pipeline_imports if _dataset_of(m) not in (None, own)]
            wrong += [f"{name} imports {m}" for m in pipeline_imports if m == "pipeline.datasets"]
        elif name.startswith("exo2ego_model") and name not in NOT_MODEL_CODE:  # the public API only
            wrong += [
                f"{name} imports {m}" for m in pipeline_imports if m not in ("pipeline", "pipeline.datasets")
            ]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycle_among_pipeline_modules():
    modules = _modules("pipeline")
    known = set(modules)
    graph = {name: {m for m in _imports(name, path, known, True) if m in known and m != name}
             for name, path in modules.items()}  # fmt: skip
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "\n".join(cycles)


def test_no_module_is_over_500_lines():
    long = {str(p.relative_to(REPO)): n for top in ("pipeline", "exo2ego_model") for p in (REPO / top).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}  # fmt: skip
    assert not long, long
