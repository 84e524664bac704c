"""The shape of the code: which package may import which, and no import cycles.

Layers, bottom to top (docs/index.md, ARCHITECTURE.md), all under the one
namespace `cosim` (the folders install as cosim.quant, cosim.golden, cosim.tb):

    quant/   training, PTQ, the package format        imports nothing of ours above it
    golden/  layout, image, integer model             imports quant/
    tb/      pyuvm environment, simulator runner      imports golden/, quant/
    cosim/   application layer: CLI, demo, report     imports any of the above

Every import is counted, also the ones inside functions (a lazy import is still a
dependency); only imports under `if TYPE_CHECKING:` (annotations, never run) are
not. A bare import of one of our folders or modules (`import golden`, `from sim
import x`) is an error too: installed, only `cosim` exists.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("quant", "golden", "tb", "cosim")
#: What each layer may import (besides itself and third-party code).
ALLOWED = {"quant": set(), "golden": {"quant"}, "tb": {"golden", "quant"},
           "cosim": {"quant", "golden", "tb"}}


def _module_name(path: Path) -> str:
    """Installed dotted name: quant/x.py -> cosim.quant.x, cosim/cli.py -> cosim.cli."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if parts[0] != "cosim":
        parts = ["cosim", *parts]
    return ".".join(parts)


def _layer(module: str) -> str:
    """The layer of a dotted name of ours: cosim.golden.image -> golden, cosim.cli -> cosim."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in PACKAGES[:3] else "cosim"


def _bare_names() -> set[str]:
    """Top-level names that would only resolve inside the checkout (our folders, tb/'s
    modules)."""
    tb = REPO / "tb"
    return set(PACKAGES[:3]) | {p.stem for p in tb.glob("*.py")} | {
        p.name for p in tb.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) of every import statement in `path` that names one of
    this repository's modules (third-party imports are dropped); bare names of ours
    come back as they are, for test_no_bare_imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    own = _module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    typing_only = {id(inner) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for stmt in node.body for inner in ast.walk(stmt)}
    bare = _bare_names()
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
            if top == "cosim" or top in bare:
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
    modules = _existing_modules()
    graph: dict[str, dict[str, int]] = {}
    for path in _sources():
        own = _module_name(path)
        edges = graph.setdefault(own, {})
        for name, line in _imports(path):
            target = _resolve(name, modules)
            if target and target != own and not own.startswith(target + "."):
                edges.setdefault(target, line)
    return graph


def _where(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in PACKAGES[:3]:
        parts = parts[1:]
    return "/".join(parts) + ".py"


def test_the_layers_import_only_downwards():
    broken = []
    for module, edges in _graph().items():
        layer = _layer(module)
        for target, line in edges.items():
            other = _layer(target)
            if other != layer and other not in ALLOWED[layer]:
                broken.append(f"{_where(module)}:{line} imports {target} "
                              f"({layer}/ may import {sorted(ALLOWED[layer]) or 'nothing'})")
    assert not broken, "\n".join(broken)


def test_no_bare_imports_of_our_folders():
    """Installed, quant/golden/tb exist only as cosim.quant, cosim.golden, cosim.tb."""
    bare = [f"{path.relative_to(REPO)}:{line} imports {name} (write cosim.{name})"
            for path in _sources() for name, line in _imports(path)
            if name.split(".")[0] != "cosim"]
    assert not bare, "\n".join(bare)


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
    (tmp_path / "quant" / "a.py").write_text("def f():\n    from cosim.golden import b\n")
    (tmp_path / "golden" / "b.py").write_text("from cosim.quant import a\n")
    (tmp_path / "tb").mkdir(exist_ok=True)
    (tmp_path / "tb" / "t.py").write_text("from golden import b\n")
    (tmp_path / "cosim" / "c.py").write_text("import cosim.d\n")
    (tmp_path / "cosim" / "d.py").write_text("from cosim import c\n")
    monkeypatch.setattr(__import__(__name__), "REPO", tmp_path)
    with pytest.raises(AssertionError, match=r"quant/a\.py:2 imports cosim\.golden\.b"):
        test_the_layers_import_only_downwards()
    with pytest.raises(AssertionError, match=r"tb/t\.py:1 imports golden"):
        test_no_bare_imports_of_our_folders()
    cycles = _cycles(_graph())
    assert ["cosim.c", "cosim.d"] in cycles
    assert ["cosim.golden.b", "cosim.quant.a"] in cycles
