"""The package's modules form no import circle: each idea has one home, and a module never needs one that needs it.

Every import counts, at the top of a module or inside a function (a lazy import only hides a circle until it runs).
"""

import ast
import subprocess
from pathlib import Path

from conftest import PYTHON, child_env

PACKAGE = Path(__file__).resolve().parent.parent / "subsetlib"


def imported_modules(source: str, modules: set[str]) -> set[str]:
    """The subsetlib modules that ``source`` imports anywhere in it; the package itself counts as ``__init__``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "subsetlib" + (f".{node.module}" if node.module else "") if node.level else node.module or ""
            names = [f"{base}.{alias.name}" for alias in node.names] if base == "subsetlib" else [base]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "subsetlib":
                found.add(parts[1] if len(parts) > 1 and parts[1] in modules else "__init__")
    return found


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    modules = set(sources)
    return {name: imported_modules(source, modules) - {name} for name, source in sources.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (the first repeated at the end), or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once all it imports is explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_circle():
    sources = {path.stem: path.read_text() for path in PACKAGE.glob("*.py")}
    assert {"data", "registry", "protocols", "results", "teacher", "lbfgs"} <= set(sources)
    graph = import_graph(sources)
    assert "registry" in graph["data"] and "results" in graph["protocols"]  # the parser sees imports at all
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " → ".join(cycle)


def test_a_circle_through_a_lazy_import_is_found():
    sources = {
        "a": "from subsetlib.b import f\n",
        "b": "def f():\n    from subsetlib import c\n",
        "c": "import subsetlib.a\n",
        "d": "from subsetlib import UserError\nfrom . import a\n",
    }
    graph = import_graph(sources)
    assert graph["d"] == {"__init__", "a"}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    del sources["c"]
    assert find_cycle(import_graph(sources)) is None


def test_the_module_table_lists_every_module_in_import_order():
    """docs/CONTRIBUTING.md lists the modules so that each imports only modules above it: the table stays the
    newcomer's map of the package (every module in it, none that is gone)."""
    table = (PACKAGE.parent / "docs" / "CONTRIBUTING.md").read_text().split("## Modules", 1)[1].split("\n## ", 1)[0]
    order = [line.split("`")[1].removesuffix(".py") for line in table.splitlines() if line.startswith("| `")]
    sources = {path.stem: path.read_text() for path in PACKAGE.glob("*.py") if not path.stem.startswith("__")}
    assert sorted(order) == sorted(sources)
    graph = import_graph(sources)
    for i, module in enumerate(order):
        later = (graph[module] - {"__init__"}) & set(order[i:])
        assert not later, f"{module} imports {sorted(later)}, listed below it in docs/CONTRIBUTING.md"


def test_torch_free_modules_import_without_torch():
    """Dask workers unpickle batch.execute_cell, and pages read the registry, without torch."""
    free = ["errors", "io", "repo", "formats", "registry", "present", "grids", "batch"]
    code = (f"import sys\nfor m in {free!r}:\n    __import__('subsetlib.' + m)\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([PYTHON, "-c", code], env=child_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
