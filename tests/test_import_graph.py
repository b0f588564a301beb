"""The package's import graph has no circles: every ``import`` inside ``src/scopeseg`` (module level and inside
functions alike) points down the layers, so any module can be imported first and on its own."""

from __future__ import annotations

import ast
from pathlib import Path

import scopeseg

PKG = Path(scopeseg.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the scopeseg modules it imports (``from .x import y`` counts ``x.y`` when that is a module)."""
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}

    def resolve(target: str) -> str | None:
        while target and target not in files:
            target = target.rpartition(".")[0]
        return target or None

    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("scopeseg")]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    stem = ".".join(base + ([node.module] if node.module else []))
                elif node.module and node.module.startswith("scopeseg"):
                    stem = node.module
                else:
                    continue
                targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in files else stem for a in node.names]
            for t in targets:
                r = resolve(t)
                if r and r != mod and not mod.startswith(r + "."):  # a package's own __init__ is its parent
                    graph[mod].add(r)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_graph_sees_relative_and_function_level_imports():
    g = import_graph()
    assert "scopeseg.errors" in g["scopeseg.io"]  # module-level relative import
    assert "scopeseg.train.loop" in g["scopeseg.train.semantic"]


def test_cycle_finder_finds_a_known_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle_in_the_package():
    cycles = find_cycles(import_graph())
    assert not cycles, "import circles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_training_and_models_never_import_inference_and_inference_never_imports_training():
    """DESIGN: image/prompt recipes live beside the models, so training needs no inference code (and the
    other way round, as in SAM2's split of predictors and training)."""
    g = import_graph()
    bad = [
        f"{m} -> {t}"
        for m, targets in g.items()
        for t in targets
        if (m.startswith(("scopeseg.train", "scopeseg.models")) and t.startswith("scopeseg.inference"))
        or (m.startswith("scopeseg.inference") and t.startswith("scopeseg.train"))
    ]
    assert not bad, "; ".join(bad)
