"""`gridconv train` and `evaluate`: files, checkpoints that survive SIGKILL, DDP on loopback,
user models, and the errors that exit with 2."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings

import pytest
import torch

from gridconv import checkpoint
from gridconv.cli import main

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def weights(out):
    return torch.load(out / "checkpoint.pt", weights_only=True)["model"]


def train_command(out, *extra):
    return [
        sys.executable,
        "-m",
        "gridconv",
        "train",
        "--model",
        "convnet",
        "--data",
        "digits",
        "--out",
        str(out),
        *extra,
    ]


def test_train_writes_metrics_result_and_a_safe_checkpoint(tmp_path, capsys):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    os.chdir(cwd)
    out = tmp_path / "run"
    argv = ["train", "--model", "mlp", "--data", "digits", "--epochs", "2", "--out", str(out)]
    assert main([*argv, "--checkpoint-every", "7", "--scheduler", "cosine"]) == 0
    printed = capsys.readouterr()
    assert "epoch 2 [" in printed.err and "test accuracy:" in printed.out
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt",
        "metrics.jsonl",
        "result.json",
    ]
    assert list(cwd.iterdir()) == []  # nothing written outside --out
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert all(line["examples_per_second"] > 0 and line["checkpoint_seconds"] > 0 for line in lines)
    result = json.loads((out / "result.json").read_text())
    assert result["test_accuracy"] == lines[-1]["test_accuracy"] > 0.8
    state = torch.load(out / "checkpoint.pt", weights_only=True)  # safe loading
    assert (state["epoch"], state["step"]) == (2, 0) and state["config"]["model"] == "mlp"
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--data", "digits"]) == 0
    assert f"test accuracy {result['test_accuracy']:.4f}" in capsys.readouterr().out


def test_a_run_killed_mid_epoch_and_resumed_ends_with_identical_weights(tmp_path):
    args = ("--epochs", "2", "--batch-size", "16", "--checkpoint-every", "2")
    reference = tmp_path / "reference"
    subprocess.run(train_command(reference, *args), env=ENV, check=True, capture_output=True)
    out = tmp_path / "killed"
    process = subprocess.Popen(
        train_command(out, *args), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (out / "checkpoint.pt").exists():
            state = checkpoint.load(out / "checkpoint.pt")
            if state["epoch"] == 0 and state["step"] >= 4:
                process.send_signal(signal.SIGKILL)
                break
        time.sleep(0.005)
    assert process.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    state = checkpoint.load(out / "checkpoint.pt")
    assert state["epoch"] == 0 and 0 < state["step"] < 90  # part-way through epoch 1
    resumed = subprocess.run(train_command(out, *args, "--resume"), env=ENV, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr
    final, expected = weights(out), weights(reference)
    assert all(torch.equal(final[k], expected[k]) for k in expected)
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    reference_history = (reference / "metrics.jsonl").read_text().splitlines()
    keys = ("train_loss", "train_accuracy", "test_accuracy")
    for ours, theirs in zip(history, map(json.loads, reference_history)):
        assert [ours[k] for k in keys] == [theirs[k] for k in keys]


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    # SGD: Adam divides by sqrt(v), which turns rounding noise in near-zero gradients into
    # steps of size lr, so its weights agree only to about lr even between two 1-process runs
    # that sum in a different order.
    args = ("--epochs", "1", "--batch-size", "32", "--optimizer", "sgd", "--lr", "0.05")
    one = tmp_path / "one"
    subprocess.run(train_command(one, *args), env=ENV, check=True, capture_output=True)
    two = tmp_path / "two"
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
    ]
    command = [*torchrun, *train_command(two, *args)[1:]]
    # faulthandler: if a rank dies on a signal, its Python stack shows where
    env = {**ENV, "PYTHONFAULTHANDLER": "1"}
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    if run.returncode != 0 and "SIGABRT" in run.stderr:
        # gloo's teardown aborted a rank once in CI after training had finished (a torch
        # race we could not reproduce in 90 runs); one more try, loudly, and every check
        # below still applies to it
        warnings.warn(f"a rank aborted; running again:\n{run.stderr[-3000:]}", stacklevel=1)
        shutil.rmtree(two, ignore_errors=True)
        run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "on 2 processes" in run.stdout
    a, b = weights(one), weights(two)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    assert json.loads((two / "result.json").read_text())["processes"] == 2


def test_a_user_model_by_module_and_factory(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_models.py").write_text(
        "import torch\n"
        "def tiny(in_channels, num_classes, image_size):\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(),\n"
        "        torch.nn.Linear(in_channels * image_size ** 2, num_classes))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run"
    argv = ["train", "--model", "my_models:tiny", "--data", "digits", "--epochs", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    assert json.loads((out / "result.json").read_text())["test_accuracy"] > 0.5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "resnet"], r"`model` must be one of 'convnet', 'mlp', 'local'"),
        (["--model", "nowhere:thing"], r"cannot import 'nowhere'"),
        (["--data", "imagenet"], r"`spec` must be one of mnist5k, digits, mnist-idx:DIR"),
        (["--resume"], r"`--resume`: there is no checkpoint in"),
    ],
)
def test_bad_input_exits_2_with_a_reason(tmp_path, capsys, argv, message):
    base = {"--model": "mlp", "--data": "digits", "--out": str(tmp_path / "x")}
    for key, value in zip(argv[::2], argv[1::2]):
        base[key] = value
    flat = [v for kv in base.items() for v in kv] + [a for a in argv if a == "--resume"]
    assert main(["train", *flat]) == 2
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.parametrize("flag", ["--epochs", "--batch-size", "--lr"])
def test_non_positive_numbers_exit_2(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "mlp", "--data", "digits", flag, "0"])
    assert exit_info.value.code == 2
    assert "must be a positive" in capsys.readouterr().err


def test_resuming_with_a_different_model_names_both(tmp_path, capsys):
    out = tmp_path / "run"
    mlp = ["train", "--model", "mlp", "--data", "digits", "--out", str(out)]
    assert main([*mlp, "--epochs", "1"]) == 0
    capsys.readouterr()
    argv = ["train", "--model", "convnet", "--data", "digits", "--out", str(out), "--resume"]
    assert main(argv) == 2
    assert "its model is 'mlp', this run's is 'convnet'" in capsys.readouterr().err
    assert main([*mlp, "--lr", "0.1", "--resume"]) == 2
    assert "its `lr` is 0.002, this run's is 0.1" in capsys.readouterr().err
    assert main([*mlp, "--epochs", "2", "--resume"]) == 0  # more epochs is fine
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_checkpoints_refuse_foreign_files(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match=r"is not a gridconv checkpoint"):
        checkpoint.load(path)
    path.write_bytes(b"corrupt")
    with pytest.raises(ValueError, match=r"is not a readable gridconv checkpoint"):
        checkpoint.load(path)


def test_every_global_rng_round_trips_through_a_checkpoint(tmp_path):
    import random

    import numpy as np

    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    checkpoint.save({"rng": checkpoint.rng_state()}, tmp_path / "c.pt")
    first = (random.random(), np.random.randn(), torch.rand(3))
    checkpoint.set_rng_state(checkpoint.load(tmp_path / "c.pt")["rng"])
    again = (random.random(), np.random.randn(), torch.rand(3))
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])


def test_fit_takes_a_new_training_set_each_epoch():
    """``fit(train=f)``: ``f(epoch)`` for epochs 1, 2, ... gives that epoch's training set
    (new canvases of the same digits, say); the model trains on each in turn."""
    from torch.utils.data import TensorDataset

    from gridconv.train import fit

    torch.manual_seed(0)
    asked, seen = [], []
    model = torch.nn.Linear(3, 2)
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0][:, 0].tolist()))

    def epoch_set(epoch):
        asked.append(epoch)
        return TensorDataset(torch.full((4, 3), float(epoch)), torch.zeros(4, dtype=torch.long))

    test = TensorDataset(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    reports = fit(model, epoch_set, test, epochs=3, batch_size=4)
    assert asked == [1, 2, 3] and len(reports) == 3
    training = [values for values in seen if len(values) == 4]  # (evaluation: the 2 rows)
    assert training == [[1.0] * 4, [2.0] * 4, [3.0] * 4]
    with pytest.raises(TypeError, match="`train` must be a Dataset or a function"):
        fit(model, [1, 2], test, epochs=1)
