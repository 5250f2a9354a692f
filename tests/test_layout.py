"""The package's architecture, checked on its source: lower layers never import higher ones,
the dispatcher and the planner know no convolution method by name, and files and functions
stay small (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gridconv.functional.methods import REGISTRY

SRC = Path(__file__).resolve().parent.parent / "src" / "gridconv"

# From the bottom up: a unit (a top-level module or subpackage of gridconv) imports only
# units of lower groups. "__init__" is the package's facade, `import gridconv as gc`.
LAYERS = (
    {"_checks", "_memo", "_atomic", "allocator"},
    {"_shapes", "checkpoint"},
    {"_native"},
    {"functional", "kernels", "data", "plot"},
    {"nn", "plan"},
    {"analysis"},
    {"models", "bench"},
    {"training"},
    {"train"},
    {"__init__"},
    {"experiments"},
    {"report"},
    {"cli"},
    {"__main__"},
)
RANK = {unit: i for i, group in enumerate(LAYERS) for unit in group}


def _unit(path: Path) -> str:
    return path.relative_to(SRC).with_suffix("").parts[0]


def _imports(path: Path) -> list[tuple[str, int]]:
    """The gridconv modules ``path`` imports (``gridconv.x`` for a name of the facade), with
    their lines."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gridconv"):
            if node.module == "gridconv":  # a submodule, or a name of the facade
                found += [(f"gridconv.{a.name}", node.lineno) for a in node.names]
            else:
                found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("gridconv")]
    return found


def _target(module: str) -> str:
    """The unit a module belongs to; a name of the facade (``gridconv.conv``) is the facade."""
    name = module.split(".")[1] if "." in module else "__init__"
    return name if name in RANK else "__init__"


def _violations(files: list[Path]) -> list[str]:
    bad = []
    for path in files:
        unit = _unit(path)
        for module, line in _imports(path):
            target = _target(module)
            if target != unit and RANK[target] >= RANK[unit]:
                bad.append(f"{path.relative_to(SRC)}:{line} ({unit}) imports {module} ({target})")
    return bad


def test_every_unit_has_a_layer():
    units = {_unit(p) for p in SRC.rglob("*.py")}
    assert units <= set(RANK), f"not in LAYERS: {sorted(units - set(RANK))}"


def test_lower_layers_never_import_higher_ones():
    assert _violations(sorted(SRC.rglob("*.py"))) == []


def test_the_layer_check_can_fail(tmp_path, monkeypatch):
    monkeypatch.setattr("tests.test_layout.SRC", tmp_path)
    (tmp_path / "nn").mkdir()
    (tmp_path / "nn" / "bad.py").write_text("from gridconv.cli import main\n")
    (tmp_path / "_shapes.py").write_text("from gridconv import conv\n")  # the facade
    assert len(_violations(sorted(tmp_path.rglob("*.py")))) == 2


def _code_strings(path: Path) -> set[str]:
    """The string constants of a module's code: docstrings left out."""
    tree = ast.parse(path.read_text())
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
    }


@pytest.mark.parametrize("name", ["functional/conv.py", "functional/methods/planner.py"])
def test_the_dispatcher_and_the_planner_know_no_method_by_name(name):
    path = SRC / name
    assert not _code_strings(path) & set(REGISTRY)
    method_modules = {f"gridconv.functional.methods.{m}" for m in REGISTRY}
    imported = {module for module, _ in _imports(path)}
    assert not {m for m in imported for mm in method_modules if m.startswith(mm)}


def _function_lengths(path: Path) -> list[tuple[int, str]]:
    """Lines of code (docstrings, blank lines and comments aside) of every function."""
    lines = path.read_text().splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0]
            doc = set()
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                doc = set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
            code = [
                n
                for n in range(node.lineno, (node.end_lineno or node.lineno) + 1)
                if n not in doc
                and lines[n - 1].strip()
                and not lines[n - 1].lstrip().startswith("#")
            ]
            found.append((len(code), f"{path.relative_to(SRC)}:{node.lineno} {node.name}"))
    return found


def test_files_and_functions_stay_small():
    files = sorted(SRC.rglob("*.py"))
    long_files = [f"{p.relative_to(SRC)}" for p in files if len(p.read_text().splitlines()) > 500]
    long_functions = [where for p in files for n, where in _function_lengths(p) if n > 80]
    assert long_files == [] and long_functions == []
    assert max(n for p in files for n, _ in _function_lengths(p)) > 20  # the count counts
