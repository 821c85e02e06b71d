"""Issue 19, item 4: fastmer's modules import each other without a cycle, and no private
name (``_x``) crosses a module border.

Every import counts: module level, inside functions (the lazy imports kept for speed and
optional dependencies) and under ``if TYPE_CHECKING:``. A lazy import does not fail on a
cycle at import time, but a cycle still means two modules that cannot be understood,
tested or moved one without the other; the extraction pipeline's layers
(``fastmer.pipeline`` <- ``fastmer.executors`` <- ``fastmer.extract`` /
``fastmer.engine.score``) must stay one-way.

How a target module is resolved: ``import fastmer.a.b`` and ``from fastmer.a import b``
(``b`` a submodule file or package) point at ``fastmer.a.b``; ``from fastmer.a import x``
(``x`` a name) at ``fastmer.a``; relative imports are resolved against the importer's package.
A package is the node of its ``__init__.py``.

How packages' ``__init__`` are treated: importing ``fastmer.a.b`` first runs
``fastmer/a/__init__.py``, so an importer outside ``fastmer.a`` also gets an edge to
``fastmer.a`` (and to every package between ``fastmer`` and the target). A module inside
``fastmer.a`` gets no such implicit edge to its own ancestors: Python has already started
them before it runs the module. An explicit import of its own package (``from fastmer.a
import x`` inside ``fastmer.a.b``) is an edge like any other, and a cycle when the
package's ``__init__`` imports the module (a name not yet bound when the child runs).
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
from pathlib import Path

import fastmer

ROOT = Path(fastmer.__file__).resolve().parent
PACKAGE = "fastmer"

#: ``(importer, module imported from, private name)`` allowed across modules, with why. Every
#: other name a module needs from another is public.
PRIVATE_IMPORTS_ALLOWED: dict[tuple[str, str, str], str] = {
    ("fastmer.info", "fastmer.ops", "_native"): (
        "`fastmer info` reports the native extension's state (the ops it registers, each one's fallback "
        "reason), which only fastmer.ops's loader knows; fastmer/ops is C++-bound code outside this refactor"),
    ("fastmer.motion.representations", "fastmer.ops", "_checks"): (
        "the batched representations check and cast their tensors exactly as the native ops do, with the ops' "
        "own helpers; fastmer/ops is outside this refactor"),
}


def module_files() -> dict[str, Path]:
    """Dotted name -> file of every module and package under fastmer/."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imports_of(name: str, modules: dict[str, Path]) -> list[tuple[str, str | None, int]]:
    """``(imported module, imported name or None, line)`` for every import in module ``name``
    (anywhere in the file) of a fastmer module; ``name`` set for ``from M import name``."""
    tree = ast.parse(modules[name].read_text(encoding="utf-8"), str(modules[name]))
    package = name if _is_package(name, modules) else name.rpartition(".")[0]
    found: list[tuple[str, str | None, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    found.append((alias.name, None, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source == PACKAGE or source.startswith(PACKAGE + "."):
                for alias in node.names:
                    found.append((source, alias.name, node.lineno))
    return found


def import_graph(modules: dict[str, Path] | None = None) -> dict[str, dict[str, int]]:
    """Module -> {module it imports: a line where it does}, per the rules in this file's docstring."""
    modules = modules or module_files()
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for name in modules:
        own = set(_ancestors(name))
        for source, imported, line in imports_of(name, modules):
            target = f"{source}.{imported}" if imported and f"{source}.{imported}" in modules else source
            if target not in modules:  # e.g. a data file's package path; nothing to run
                continue
            for package in _ancestors(target):
                if package not in own and package != name:
                    graph[name].setdefault(package, line)
            if target != name:
                graph[name].setdefault(target, line)
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None (iterative DFS, stable order)."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    for start in sorted(graph):
        if start in state:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
    return None


def test_the_graph_sees_every_kind_of_import():
    """Precondition: function-level, ``TYPE_CHECKING`` and relative imports are all edges."""
    graph = import_graph()
    # A lazy import inside the command function (extraction pulls torch in: not at `--help`).
    assert "fastmer.extract" in graph["fastmer.cli.extract"]
    # Lazy imports of ray's actors (inside methods) and the local executor's stages.
    assert "fastmer.pipeline" in graph["fastmer.executors.ray"]
    assert "fastmer.executors.local" in graph["fastmer.engine.score"]
    # An importer outside a package runs the package's __init__ too.
    assert "fastmer.store" in graph["fastmer.pipeline"]
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}, "c": {"b": 1}}) is None


def test_relative_imports_and_private_names_are_resolved(tmp_path):
    package = tmp_path / "fastmer" / "sub"
    package.mkdir(parents=True)
    (tmp_path / "fastmer" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("from .a import x\n")
    (package / "a.py").write_text("def f():\n    from . import b\n    from ..top import y\n")
    (package / "b.py").write_text("from fastmer.sub import a\n")
    (tmp_path / "fastmer" / "top.py").write_text("import fastmer.sub.b\n")
    modules = {name: tmp_path / path.relative_to(ROOT.parent) for name, path in {
        "fastmer": ROOT / "__init__.py", "fastmer.sub": ROOT / "sub" / "__init__.py", "fastmer.sub.a": ROOT / "sub" / "a.py",
        "fastmer.sub.b": ROOT / "sub" / "b.py", "fastmer.top": ROOT / "top.py"}.items()}
    graph = import_graph(modules)
    assert graph["fastmer.sub"] == {"fastmer.sub.a": 1}
    assert graph["fastmer.sub.a"] == {"fastmer.sub.b": 2, "fastmer.top": 3}
    assert graph["fastmer.sub.b"] == {"fastmer.sub.a": 1}  # its own package: no implicit edge
    assert graph["fastmer.top"] == {"fastmer.sub": 1, "fastmer.sub.b": 1}  # the package's __init__ runs first
    assert find_cycle(graph) == ["fastmer.sub.a", "fastmer.sub.b", "fastmer.sub.a"]
    (package / "_util.py").write_text("")
    (package / "c.py").write_text("from fastmer.sub._util import x\nfrom ._util import y\n")
    (tmp_path / "fastmer" / "top.py").write_text("from fastmer.sub.a import _hidden\nfrom fastmer.sub import _util\n")
    modules.update({"fastmer.sub._util": package / "_util.py", "fastmer.sub.c": package / "c.py"})
    assert sorted(private_imports(modules)) == [("fastmer.top", "fastmer.sub", "_util", 2),
                                                ("fastmer.top", "fastmer.sub.a", "_hidden", 1)]


def reachable(graph: dict[str, dict[str, int]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for child in graph[todo.pop()]:
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def test_the_pipeline_stages_sit_below_who_runs_them():
    """clip -> crops -> features -> rows (fastmer.pipeline) knows nothing of the executors
    that run it, nor of extraction to a store or scoring that drive them."""
    graph = import_graph()
    above = {"fastmer.extract", "fastmer.executors.local", "fastmer.executors.ray", "fastmer.engine.score",
             "fastmer.engine.ray", "fastmer.cli"}
    assert not reachable(graph, "fastmer.pipeline") & above
    for executor in ("fastmer.executors.local", "fastmer.executors.ray"):
        assert "fastmer.pipeline" in reachable(graph, executor)
        assert not reachable(graph, executor) & {"fastmer.extract", "fastmer.engine", "fastmer.engine.score"}


def test_no_import_cycle():
    graph = import_graph()
    cycle = find_cycle(graph)
    if cycle is not None:
        steps = [f"{a} -> {b} (line {graph[a][b]})" for a, b in itertools.pairwise(cycle)]
        raise AssertionError("import cycle between fastmer modules:\n  " + "\n  ".join(steps))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _extension(module: str) -> bool:
    """A module with no source here: the compiled ``fastmer._C``."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent that is a module, not a package: ``module`` names a function
        return False


def private_imports(modules: dict[str, Path] | None = None) -> list[tuple[str, str, str, int]]:
    """``(importer, module imported from, private name, line)`` of every private name that
    crosses a module border: ``from fastmer.x import _y`` (a function, class or constant of
    another module), or a private module (``fastmer.a._m``, e.g. ``fastmer/ops/_native.py``,
    or the compiled ``fastmer._C``) imported from outside its package ``fastmer.a``; within
    its package, a private module is the package's own business."""
    modules = modules or module_files()
    found = []
    for name in modules:
        for source, imported, line in imports_of(name, modules):
            dotted = source.split(".") + ([imported] if imported else [])
            for depth in range(1, len(dotted)):
                if not _private(dotted[depth]):
                    continue
                owner, module = ".".join(dotted[:depth]), ".".join(dotted[: depth + 1])
                is_module = module in modules or depth < len(dotted) - 1 or _extension(module)
                inside = name == owner or name.startswith(owner + ".")
                if module != name and not (is_module and inside):
                    found.append((name, owner, dotted[depth], line))
                break
    return found


def test_private_names_are_found():
    """Precondition: the rule sees a private name and tells a package-private module from one
    imported from outside its package."""
    found = {(importer, owner, private) for importer, owner, private, _ in private_imports()}
    assert ("fastmer.info", "fastmer.ops", "_native") in found  # the allowed exception, seen
    assert ("fastmer.ops.tvl1", "fastmer.ops", "_native") not in found  # inside its package
    assert ("fastmer.ops._native", "fastmer", "_C") not in found  # the compiled extension, inside fastmer


def test_no_private_name_crosses_modules():
    modules = module_files()
    crossing = [f"{modules[importer].relative_to(ROOT.parent)}:{line}: {private} from {owner}"
                for importer, owner, private, line in private_imports(modules)
                if (importer, owner, private) not in PRIVATE_IMPORTS_ALLOWED]
    assert not crossing, "private names imported from another module (make them public):\n  " + "\n  ".join(crossing)
