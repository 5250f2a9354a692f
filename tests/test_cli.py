"""The command line: the demo runs, bad arguments exit with 2 and a one-line reason."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from gridconv.cli import main


def test_quick_demo_trains_and_reports_test_accuracy(capsys):
    assert main(["demo", "--quick"]) == 0
    out = capsys.readouterr()
    accuracy = float(re.search(r"test accuracy: (\d\.\d+)", out.out).group(1))
    assert accuracy > 0.8  # 3 epochs on 1,000 digits; chance is 0.1
    assert "epoch 1 [" in out.err  # the progress bar


@pytest.mark.slow
def test_full_demo_reaches_95_percent(capsys):
    assert main(["demo"]) == 0
    accuracy = float(re.search(r"test accuracy: (\d\.\d+)", capsys.readouterr().out).group(1))
    assert accuracy >= 0.95


def test_bad_arguments_exit_with_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--epochs", "0"])
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
