"""The import graph: layers point one way, storage's wings point one way, and there are no circles.

The graph is read from the source with `ast`; nothing is imported. Two graphs are read:
- `GRAPH`, every import: at module level, inside a function (a lazy import is still a
  dependency) and under `if TYPE_CHECKING:`. The layer and wing rules check it, so even a
  type-only import may not point upward.
- `RUNTIME_GRAPH`, the imports that run: module level and inside functions, but not those under
  `if TYPE_CHECKING:` (they never execute, so they make no circle). The circle rule checks it:
  there is no circle at all, lazy ones included. A higher module that a lower one needs at run
  time plugs into a hook the lower one declares (`RunBase.use_repo_class`, which `sdk/repo.py`
  calls), rather than being imported lazily.
"""

from __future__ import annotations

import ast
from pathlib import Path

import aim_parquet

PACKAGE = Path(aim_parquet.__file__).parent

# errors <- format <- objects <- storage <- query <- sdk <- convert, integrations, ui <- cli <- the face
RANKS = {
    "errors": 0,
    "version": 0,
    "system": 1,  # and it imports only `errors` (test below)
    "format": 1,
    "objects": 2,
    "storage": 3,
    "query": 4,
    "sdk": 5,
    "convert": 6,
    "integrations": 6,
    "ui": 6,
    "cli": 7,
    "": 8,  # aim_parquet/__init__.py: re-exports only
    "__main__": 9,
}
INTEGRATIONS = {
    "hugging_face",
    "integrations_base",
    "keras",
    "lightgbm",
    "optuna",
    "pytorch",
    "pytorch_lightning",
    "tensorflow",
    "xgboost",
}
# base <- online <- index <- compaction <- maintenance
WINGS = {"base": 0, "online": 1, "index": 2, "compaction": 3, "maintenance": 4}
OFFLINE_WINGS = {"compaction", "maintenance"}

MAX_MODULE_LINES = 400
# Modules still over MAX_MODULE_LINES, with their length today. Shrink-only: a module may not grow
# past its number, and one that got to MAX_MODULE_LINES or less must be removed from here.
LONG_MODULES: dict[str, int] = {}  # none left; a module that must grow past the limit gets split


def _module_name(path: Path) -> str:
    parts = ["aim_parquet", *path.relative_to(PACKAGE).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _known(name: str) -> str:
    """`name`, or the closest package of it that is a module of ours."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _is_type_checking(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _type_checking_only(tree: ast.AST) -> set[int]:
    """The ids of the import nodes inside `if TYPE_CHECKING:` bodies (not their `else:`)."""
    return {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
        if isinstance(inner, (ast.Import, ast.ImportFrom))
    }


def _imports(module: str, path: Path, *, with_type_checking: bool) -> set[str]:
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = set() if with_type_checking else _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {_known(a.name) for a in node.names if a.name.startswith("aim_parquet")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            if base == "aim_parquet" or base.startswith("aim_parquet."):
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in MODULES else _known(base))
    found.discard(module)
    return found


GRAPH = {m: _imports(m, p, with_type_checking=True) for m, p in MODULES.items()}
RUNTIME_GRAPH = {m: _imports(m, p, with_type_checking=False) for m, p in MODULES.items()}


def _edges() -> list[tuple[str, str]]:
    return [(a, b) for a, targets in GRAPH.items() for b in sorted(targets)]


def _layer(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return ""
    return "integrations" if parts[0] in INTEGRATIONS else parts[0]


def _wing(module: str) -> str | None:
    """The storage wing of `module`; None for the face (`aim_parquet.storage`) and non-storage."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "storage" else None


def _circles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: set[frozenset[str]] = set()
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.add(frozenset(component))
    return circles


def test_the_graph_is_read() -> None:
    """Guards the reader itself: a known edge of each kind is found, in the graph it belongs to."""
    # top level
    assert "aim_parquet.storage.online.run_writer" in RUNTIME_GRAPH["aim_parquet.sdk.run"]
    assert (
        "aim_parquet.storage.compaction.dataset"
        in RUNTIME_GRAPH["aim_parquet.storage.compaction.compactor"]
    )
    # inside a function (`Run.__init__`): a dependency at run time
    assert "aim_parquet.system.resources" in RUNTIME_GRAPH["aim_parquet.sdk.run"]
    # under `if TYPE_CHECKING:` only: in GRAPH, not in RUNTIME_GRAPH
    assert "aim_parquet.sdk.repo" in GRAPH["aim_parquet.sdk.run_base"]
    assert "aim_parquet.sdk.repo" not in RUNTIME_GRAPH["aim_parquet.sdk.run_base"]
    assert len(MODULES) > 100


def test_the_circle_finder_finds_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert _circles(graph) == {frozenset({"a", "b", "c"})}


def test_every_package_has_a_rank() -> None:
    assert {_layer(m) for m in MODULES} <= set(RANKS)


def test_layers_point_one_way() -> None:
    upward = [
        f"{a} -> {b}"
        for a, b in _edges()
        if _layer(a) != _layer(b) and RANKS[_layer(b)] >= RANKS[_layer(a)]
    ]
    assert upward == []


def test_system_imports_only_errors() -> None:
    outside = [
        f"{a} -> {b}"
        for a, b in _edges()
        if _layer(a) == "system" and _layer(b) not in {"system", "errors"}
    ]
    assert outside == []


def test_storage_wings_point_one_way() -> None:
    upward = [
        f"{a} -> {b}"
        for a, b in _edges()
        if (wa := _wing(a)) and (wb := _wing(b)) and wa != wb and WINGS[wb] >= WINGS[wa]
    ]
    assert upward == []
    assert {w for m in MODULES if (w := _wing(m))} == set(WINGS)


def test_the_online_path_never_imports_the_offline_tools() -> None:
    online = [m for m in MODULES if _wing(m) in {"base", "online", "index"}]
    assert "aim_parquet.storage.online.run_writer" in online
    offending = [f"{a} -> {b}" for a in online for b in GRAPH[a] if _wing(b) in OFFLINE_WINGS]
    assert offending == []


def test_storage_modules_do_not_import_the_public_face() -> None:
    """The face (`aim_parquet.storage`) is for code outside storage; inside, it would be a circle."""
    inside = [a for a, b in _edges() if _wing(a) and b == "aim_parquet.storage"]
    assert inside == []


def test_no_import_circles() -> None:
    assert _circles(RUNTIME_GRAPH) == set()


def _line_counts() -> dict[str, int]:
    return {
        path.relative_to(PACKAGE.parent).as_posix(): len(
            path.read_text(encoding="utf-8").splitlines()
        )
        for path in MODULES.values()
    }


def test_modules_stay_short() -> None:
    """One module per responsibility, about MAX_MODULE_LINES lines at most (STYLE.md)."""
    counts = _line_counts()
    too_long = {
        path: n for path, n in counts.items() if n > LONG_MODULES.get(path, MAX_MODULE_LINES)
    }
    assert too_long == {}, "split these modules by responsibility"
    short_enough = {p for p in LONG_MODULES if counts.get(p, 0) <= MAX_MODULE_LINES}
    assert short_enough == set(), "short enough now (or gone): remove them from LONG_MODULES"
