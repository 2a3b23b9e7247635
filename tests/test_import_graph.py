"""The package's imports flow one way (ARCHITECTURE.md): no module reaches back up, so no
import cycle, counting imports inside functions and under TYPE_CHECKING."""

import ast
from pathlib import Path

import progressive_sae

ROOT = Path(progressive_sae.__file__).resolve().parent
PACKAGE = "progressive_sae"


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()

    def owner(name: str) -> str:
        while name not in mods and "." in name:
            name = name.rsplit(".", 1)[0]
        return name if name in mods else ""

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for module, path in mods.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                names = [f"{base}.{a.name}" for a in node.names]
            for name in names:
                if name.startswith(PACKAGE) and (target := owner(name)) and target != module:
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_lower_rooms_never_import_higher_ones():
    graph = import_graph()
    forbidden = {  # room → rooms it must not import
        "sae": ["train", "lm", "analysis", "cli", "formats", "experiment", "interp", "evals"],
        "kernels": ["sae", "train", "lm", "formats", "experiment"],
        "train": ["lm", "analysis", "cli", "experiment", "interp", "evals", "formats"],
        "data": ["lm", "train", "sae", "experiment"],
        "lm": ["train", "experiment", "interp", "evals", "analysis"],
        "interp": ["experiment", "cli", "report"],
        "evals": ["experiment", "cli", "report", "interp"],
        "analysis": ["experiment", "cli"],
    }
    wrong = []
    for module, targets in graph.items():
        room = module.split(".")[1] if module.count(".") else ""
        for target in targets:
            other = target.split(".")[1] if target.count(".") else ""
            if other in forbidden.get(room, []):
                wrong.append(f"{module} -> {target}")
    assert wrong == []
