"""No import cycle between the project's modules.

The graph is read from the source with `ast`, so an import inside a function (the usual way to
break a cycle at run time) still counts: it is the same dependency, deferred. An import names the
module it reaches (`from a.b import c` is `a.b.c` when that is a module, else `a.b`); importing a
module does not count as importing its parent packages, which Python runs first but which are not
what the importer depends on.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cc_events", "cc_alerts", "cc_assets", "resources", "sensors", "streaming", "scripts", "sandbox")

# KNOWN CYCLES, to be emptied: cycles in packages other engineers own that cannot be fixed where
# they are found. A cycle is tolerated while its modules are a subset of one entry; a new cycle,
# or any cycle touching cc_events, fails; an entry no longer found warns: delete it. Empty when
# this test was written (issue 11): the one cycle found was cc_events' own.
KNOWN_CYCLES: tuple[frozenset[str], ...] = ()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `name` imports, at module level or anywhere below."""
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package upwards
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in modules else base)
    return {t for t in targets if t in modules and t != name}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _describe(component: frozenset[str], graph: dict[str, set[str]]) -> str:
    edges = sorted(f"{a} -> {b}" for a in component for b in graph[a] if b in component)
    return "{" + ", ".join(sorted(component)) + "}: " + "; ".join(edges)


def test_the_graph_sees_imports_inside_functions():
    graph = {"a": {"b"}, "b": {"a"}, "c": set()}
    assert cycles(graph) == [frozenset({"a", "b"})]
    source = ROOT / "cc_events" / "latest.py"
    assert "cc_events.context" in _imports("cc_events.latest", source, _modules())


def test_no_new_import_cycles():
    graph = import_graph()
    assert "cc_events.registry" in graph and "streaming.sidecar" in graph  # the graph is the project's
    found = cycles(graph)
    unknown = [c for c in found if not any(c <= known for known in KNOWN_CYCLES)]
    in_events = [c for c in found if any(m.split(".")[0] == "cc_events" for m in c)]
    assert not in_events, "import cycles in cc_events:\n" + "\n".join(_describe(c, graph) for c in in_events)
    assert not unknown, "new import cycles:\n" + "\n".join(_describe(c, graph) for c in unknown)
    stale = [known for known in KNOWN_CYCLES if not any(c & known for c in found)]
    if stale:
        warnings.warn(f"KNOWN_CYCLES entries no longer found, delete them: {stale}", stacklevel=1)
