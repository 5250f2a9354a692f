"""The documentation site: every public name is in the API reference with a docstring, and
the site builds strictly (warnings are errors) with the gallery's figures on its pages.

The guides' code is checked too: pytest runs the Markdown pages under ``docs/`` as doctests.
"""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gridconv

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# The modules whose ``__all__`` is the public API (submodules listed there are not names).
PUBLIC_MODULES = (
    "gridconv",
    "gridconv.functional",
    "gridconv.nn",
    "gridconv.kernels",
    "gridconv.data",
    "gridconv.analysis",
    "gridconv.plan",
    "gridconv.train",
    "gridconv.models",
    "gridconv.plot",
)
_DIRECTIVE = re.compile(r"^\.\. (module|autofunction|autoclass|data)::\s+(\S+)", re.M)


def public_names() -> dict[str, object]:
    """Every public name, qualified (``gridconv.nn.Conv2d``), with its object."""
    names = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            if not inspect.ismodule(value):
                names[f"{module_name}.{name}"] = value
    return names


def documented_names() -> set[str]:
    """The qualified names the reference's ``.rst`` pages document, by their directives."""
    found = set()
    for page in sorted((DOCS / "api").glob("*.rst")):
        module = None
        for kind, target in _DIRECTIVE.findall(page.read_text()):
            if kind == "module":
                module = target
            else:
                assert module is not None, f"{page.name}: {target} comes before any module"
                found.add(f"{module}.{target}")
    return found


def _undocumented() -> list[str]:
    """Public names the reference lacks. ``gridconv.conv`` and ``gridconv.functional.conv``
    are one object: documented once is enough for a function or class, not for data."""
    documented = documented_names()
    names = public_names()
    by_object = {id(names[n]) for n in documented if n in names}
    return [
        name
        for name, value in names.items()
        if name not in documented
        and not ((inspect.isfunction(value) or inspect.isclass(value)) and id(value) in by_object)
    ]


def test_every_public_name_is_in_the_api_reference():
    assert len(public_names()) > 150
    assert _undocumented() == []


def test_the_reference_documents_only_names_that_exist():
    assert sorted(documented_names() - set(public_names())) == []


def test_every_public_function_and_class_has_a_docstring():
    missing = [
        name
        for name, value in public_names().items()
        if (inspect.isfunction(value) or inspect.isclass(value))
        and (
            not (value.__doc__ or "").strip()
            # a dataclass without one gets its signature as a docstring
            or value.__doc__.startswith(f"{value.__name__}(")
        )
    ]
    assert missing == []


def test_no_public_constructor_takes_star_args_or_star_star_kwargs():
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    vague = [
        name
        for name, value in public_names().items()
        if inspect.isclass(value)
        and any(p.kind in variadic for p in inspect.signature(value).parameters.values())
    ]
    assert vague == []


def test_the_completeness_check_can_fail(monkeypatch):
    monkeypatch.setattr(gridconv.kernels, "__all__", [*gridconv.kernels.__all__, "oops"])
    monkeypatch.setattr(gridconv.kernels, "oops", lambda: None, raising=False)
    assert _undocumented() == ["gridconv.kernels.oops"]


@pytest.mark.slow
def test_the_docs_build_strictly_with_every_name_and_the_gallery(tmp_path):
    out = tmp_path / "html"
    build = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    run = subprocess.run([*build, str(DOCS), str(out)], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    pages = "".join(p.read_text() for p in (out / "api").glob("*.html"))
    anchors = set(re.findall(r'id="(gridconv[\w.]*)"', pages))
    names = public_names()
    shown = {id(names[a]) for a in anchors if a in names}  # an op is shown once, by one name
    missing = [
        name
        for name, value in names.items()
        if name not in anchors
        and not ((inspect.isfunction(value) or inspect.isclass(value)) and id(value) in shown)
    ]
    assert missing == []
    for guide in ("convolution", "transpose", "fast", "unshared", "pooling", "kernels",
                  "training", "foveation"):  # fmt: skip
        assert (out / "guides" / f"{guide}.html").is_file()
    for page in ("getting-started", "architecture", "changelog"):
        assert (out / f"{page}.html").is_file()
    examples = sorted(p.stem for p in (DOCS / "examples").glob("plot_*.py"))
    assert len(examples) >= 5
    for example in examples:
        html = (out / "gallery" / f"{example}.html").read_text()
        figures = re.findall(rf'src="../_images/sphx_glr_{example}_\d+\.png"', html)
        assert figures, f"{example}: no figure on its page"
        assert (out / "_images" / f"sphx_glr_{example}_001.png").stat().st_size > 1000
