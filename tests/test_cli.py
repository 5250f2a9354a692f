"""The command line: bad arguments exit with 2 and a one-line reason; the entry points work.

The demo has its own tests (test_demo.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gridconv.cli import main


def test_bad_arguments_exit_with_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "mlp", "--data", "digits", "--epochs", "0"])
    assert exit_info.value.code == 2
    assert "must be a positive integer" in capsys.readouterr().err


def test_python_dash_m_and_console_script():
    for cmd in ([sys.executable, "-m", "gridconv", "--version"], ["gridconv", "--version"]):
        bin_dir = sys.executable.rsplit("/", 1)[0]
        if cmd[0] == "gridconv":
            cmd[0] = f"{bin_dir}/gridconv"
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("gridconv 0.")
