"""The shape of the code, read from its source: no import circle in `bot/` or `commands/`
(imports inside functions and under `TYPE_CHECKING` count too), the domain never imports
the edge or Slack's or Google's libraries, the store never imports a platform adapter,
and every module the command workers preload exists."""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "commands")


def _modules() -> dict[str, Path]:
    """Every module of `bot` and `commands` by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imported(name: str, path: Path) -> Iterator[str]:
    """The dotted names `name` imports anywhere in its source, relative ones resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:  # `from pkg import module` imports the module
                full = f"{module}.{alias.name}"
                yield full if full in MODULES else module


def _ours(imported: str) -> str | None:
    """The module of `bot` / `commands` an import lands in (None: not ours)."""
    while imported and imported not in MODULES:
        imported = imported.rpartition(".")[0]
    return imported or None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = {_ours(i) for i in _imported(name, path)}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_source_is_where_the_test_looks() -> None:
    assert {"bot.wiring", "commands.service", "bot.store.db"} <= MODULES.keys()


def test_no_import_circle_in_bot_or_commands() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_the_domain_imports_neither_the_edge_nor_slack_nor_google() -> None:
    forbidden = ("bot", "slack_bolt", "slack_sdk", "google")
    bad = {
        f"{name} -> {imported}"
        for name, path in MODULES.items()
        if name.split(".")[0] == "commands"
        for imported in _imported(name, path)
        if imported.split(".")[0] in forbidden
    }
    assert bad == set()


def _within(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _edges(source: tuple[str, ...], target: tuple[str, ...]) -> set[tuple[str, str]]:
    """Imports from a module in the `source` packages of one in the `target` packages."""
    return {
        (name, imported)
        for name, imports in _graph().items()
        if _within(name, *source)
        for imported in imports
        if _within(imported, *target)
    }


def test_the_store_imports_no_platform_adapter() -> None:
    assert _edges(("bot.store",), ("bot.platforms",)) == set()


def test_only_the_cli_starts_the_processes_and_nothing_imports_the_cli() -> None:
    """`bot/cli` runs `bot/serve`; the composition root (`bot/wiring.py`) and everything
    below it never import either."""
    top = ("bot.serve", "bot.cli")
    into_top = _edges(PACKAGES, top)
    assert {(n, i) for n, i in into_top if not _within(n, *top)} == set()
    assert _edges(("bot.serve",), ("bot.cli",)) == set()


def test_the_workers_preload_modules_that_exist() -> None:
    """The forkserver skips a preload it cannot import without a word: a moved module
    would quietly stop being shared."""
    from bot.serve.workers import PRELOAD

    missing = [name for name in PRELOAD if importlib.util.find_spec(name) is None]
    assert missing == []
