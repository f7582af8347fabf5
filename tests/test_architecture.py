"""The import graph runs one way (README "Layout"): no circle of modules, no two packages importing
each other, and the pure packages free of the web, queue and database layers.

Every ``import`` counts, at module level or inside a function: a circle held together by import
order or by a late import is still a circle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("service", "worker", "world", "model", "index", "geo", "starid", "migrations", "scripts")
# What a package may import (besides itself); everything not listed is refused.
ALLOWED = {
    "geo": set(),
    "starid": {"geo"},
    "index": {"geo"},
    "world": {"geo", "index"},
    "model": {"geo", "index", "world"},
    "service": {"geo", "index", "model", "starid", "world", "migrations"},
    "worker": {"service", "geo", "index", "model", "starid", "world"},
    "migrations": set(),
    "scripts": {"service", "geo", "index", "model", "starid", "world"},
}
PURE = ("geo", "index", "model", "starid", "world")
NOT_IN_PURE = ("fastapi", "starlette", "rq", "redis", "sqlalchemy", "geoalchemy2", "alembic", "psycopg")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if package == "migrations" and (path.name == "env.py" or "versions" in path.parts):
                continue  # Alembic runs env.py and the revision files by path; nothing imports them
            found[_module_name(path)] = path
    return found


def _imports(path: Path, module: str, modules: dict[str, Path]) -> set[str]:
    """The project modules ``module`` imports (the most specific module each import names)."""
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from a.b import c` imports module a.b.c when there is one, else names of a.b
            names = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in modules else stem for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
    return targets


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_function_level_imports():
    graph = _graph()
    assert "model.describer" in graph and "index.build" in graph["model.describer"]
    # service/api/main.py builds the app; it must see the routes it includes
    assert any(target.startswith("service.api.routes") for target in graph["service.api.main"])


def test_no_circle_of_modules():
    cycles = _cycles(_graph())
    assert cycles == [], "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_two_packages_import_each_other_and_layers_run_one_way():
    package_edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for module, targets in _graph().items():
        for target in targets:
            a, b = module.split(".")[0], target.split(".")[0]
            if a != b:
                package_edges[(a, b)].append(f"{module} -> {target}")
    mutual = sorted({tuple(sorted(pair)) for pair in package_edges if pair[::-1] in package_edges})
    assert mutual == [], f"packages importing each other: {mutual}"
    refused = {f"{a} -> {b}": where[:3] for (a, b), where in package_edges.items() if b not in ALLOWED[a]}
    assert refused == {}, f"imports against the layering: {refused}"


def test_pure_packages_know_no_web_queue_or_database():
    offenders = []
    for package in PURE:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
                offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in NOT_IN_PURE]
    assert offenders == []


def test_importing_the_settings_stays_light():
    """The settings are read by every process and command: they must not pull in OpenCV, SciPy
    or torch (the refinement's defaults come from geo.refine_params)."""
    import subprocess
    import sys

    code = "import sys, service.config; print(sorted(m for m in ('cv2', 'scipy', 'torch') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]", loaded
