"""tools/ (sample releases, benches, report) stands apart from the product: pipeline/ and exo2ego_model/ never
import it, its own modules import each other without a cycle, none is over 500 lines, and every sample
generator answers --help."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "tools"
MAX_LINES = 500
SAMPLE_GENERATORS = ("egoexoclip", "egoit", "egobench", "egoclip")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import statement anywhere in the file (inside functions too); relative imports
    resolved against the file's package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, module] if module else base)
            found.append((module, [alias.name for alias in node.names]))
    return found


def _tools_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(TOOLS.rglob("*.py"))}


def test_product_never_imports_tools():
    offenders = []
    for top in ("pipeline", "exo2ego_model"):
        for path in sorted((REPO / top).rglob("*.py")):
            for module, names in _imports(path):
                if module == "tools" or module.startswith("tools."):
                    offenders.append(f"{path.relative_to(REPO)}: {module} {names}")
    assert not offenders, offenders


def test_tools_modules_have_no_import_cycle():
    modules = _tools_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for module, names in _imports(path):
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules] or [module]
            graph[name] |= {t for t in targets if t in modules and t != name}
    # depth-first search for a back edge
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle in tools/: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert graph["tools.bench.egoexoclip"] >= {"tools.bench.peer"}  # the graph sees function-level imports too


def test_no_tools_module_over_500_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, path in _tools_modules().items()}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


@pytest.mark.parametrize("dataset", SAMPLE_GENERATORS)
def test_sample_generator_help(dataset):
    proc = subprocess.run([sys.executable, "-m", f"tools.samples.{dataset}", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--out" in proc.stdout
