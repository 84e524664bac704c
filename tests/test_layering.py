"""The shape of the code: which package may import which, and no import cycles.

Layers, bottom to top (docs/index.md, ARCHITECTURE.md):

    quant/   training, PTQ, the package format        imports nothing of ours above it
    golden/  layout, image, integer model             imports quant/
    tb/      pyuvm environment, simulator runner      imports golden/, quant/
    cosim/   application layer: CLI, demo, report     imports any of the above

Every import is counted, also the ones inside functions (a lazy import is still a
dependency); only imports under `if TYPE_CHECKING:` (annotations, never run) are
not. tb/ modules import each other by bare name (tb/ is on sys.path when cocotb runs
them), so those names are resolved inside tb/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("quant", "golden", "tb", "cosim")
#: What each package may import (besides itself and third-party code).
ALLOWED = {"quant": set(), "golden": {"quant"}, "tb": {"golden", "quant"},
           "cosim": {"quant", "golden", "tb"}}


def _tb_local_names() -> set[str]:
    tb = REPO / "tb"
    return {p.stem for p in tb.glob("*.py")} | {p.name for p in tb.iterdir()
                                               if p.is_dir() and (p / "__init__.py").is_file()}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, tb_names: set[str]) -> list[tuple[str, int]]:
    """(imported module, line) of every import statement in `path`, as dotted names of
    this repository's modules (third-party imports are dropped)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    own = _module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    typing_only = {id(inner) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for stmt in node.body for inner in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
        for name in names:
            top = name.split(".")[0]
            if own.startswith("tb") and top in tb_names and top not in PACKAGES:
                name = f"tb.{name}"
                top = "tb"
            if top in PACKAGES:
                found.append((name, node.lineno))
    return found


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py")
                  if "__pycache__" not in p.parts)


def _existing_modules() -> set[str]:
    return {_module_name(p) for p in _sources()}


def _resolve(name: str, modules: set[str]) -> str | None:
    """The longest prefix of `name` that is one of our modules (from x import y: y may
    be a module or a name inside x)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _graph() -> dict[str, dict[str, int]]:
    tb_names = _tb_local_names()
    modules = _existing_modules()
    graph: dict[str, dict[str, int]] = {}
    for path in _sources():
        own = _module_name(path)
        edges = graph.setdefault(own, {})
        for name, line in _imports(path, tb_names):
            target = _resolve(name, modules)
            if target and target != own and not own.startswith(target + "."):
                edges.setdefault(target, line)
    return graph


def test_the_layers_import_only_downwards():
    broken = []
    for module, edges in _graph().items():
        layer = module.split(".")[0]
        for target, line in edges.items():
            other = target.split(".")[0]
            if other != layer and other not in ALLOWED[layer]:
                broken.append(f"{module.replace('.', '/')}.py:{line} imports {target} "
                              f"({layer}/ may import {sorted(ALLOWED[layer]) or 'nothing'})")
    assert not broken, "\n".join(broken)


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_in_a_circle():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


# --- the checker checks: a planted violation and a planted cycle are found ---------------


def test_the_checker_finds_a_planted_upward_import_and_cycle(tmp_path, monkeypatch):
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "quant" / "a.py").write_text("def f():\n    from golden import b\n")
    (tmp_path / "golden" / "b.py").write_text("from quant import a\n")
    (tmp_path / "cosim" / "c.py").write_text("import cosim.d\n")
    (tmp_path / "cosim" / "d.py").write_text("from cosim import c\n")
    monkeypatch.setattr(__import__(__name__), "REPO", tmp_path)
    with pytest.raises(AssertionError, match=r"quant/a\.py:2 imports golden\.b"):
        test_the_layers_import_only_downwards()
    cycles = _cycles(_graph())
    assert ["cosim.c", "cosim.d"] in cycles and ["golden.b", "quant.a"] in cycles
