"""The wheel as a user installs it: built from this tree, carrying ``py.typed``, the C source
of the compiled 1-D kernel and one version; installed (not editable) into a fresh virtual
environment, where gridconv imports from the installed copy, convolves, and builds the
compiled kernel from the installed source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import gridconv

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out)]
    subprocess.run([*build, str(ROOT)], check=True, timeout=600)
    (path,) = out.glob("gridconv-*.whl")
    return path


def test_the_wheel_carries_the_marker_the_c_source_and_one_version(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        fields = dict(
            line.split(": ", 1)
            for line in archive.read(metadata).decode().splitlines()
            if ": " in line
        )
    assert "gridconv/py.typed" in names
    assert "gridconv/_native/overlap_save.c" in names
    assert fields["Version"] == gridconv.__version__
    assert wheel.name.startswith(f"gridconv-{gridconv.__version__}-")


SMOKE = """
import importlib.metadata, json, sys
import torch
import gridconv as gc
from gridconv import _native

x, w = torch.randn(2, 3, 700), torch.randn(4, 3, 63)
out = gc.conv(x, w, padding="same", method="fft")  # the compiled 1-D kernel, where it builds
reference = torch.nn.functional.conv1d(x, w, padding=31)
print(json.dumps({
    "file": gc.__file__,
    "prefix": sys.prefix,
    "version": gc.__version__,
    "metadata": importlib.metadata.version("gridconv"),
    "native": _native.available(),
    "error": (out - reference).abs().max().item(),
}))
"""


def test_the_installed_wheel_works_in_a_fresh_environment(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet"]
    # torch from a wheel on local disk where there is one (as the Makefile does), saving a
    # large download; the next install takes what is still missing from the package index
    subprocess.run([*pip, "--no-index", "--no-deps", "torch>=2.4"], check=False, timeout=600)
    subprocess.run([*pip, str(wheel)], check=True, timeout=900)
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["GRIDCONV_CACHE"] = str(cache)
    run = subprocess.run(
        [python, "-c", SMOKE], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(result["file"]).is_relative_to(result["prefix"])  # the installed copy
    assert result["version"] == result["metadata"] == gridconv.__version__
    assert result["error"] < 1e-3
    assert result["native"] and list(cache.rglob("*.so")), "the compiled kernel was not built"
