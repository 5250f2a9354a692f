"""gridconv bench measures torch at its best (NCHW and channels_last, the faster counts) and
tests its peers: a peer whose API changed is left out with a warning, never a crash."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from gridconv.bench import conv as bench
from gridconv.bench import harness
from gridconv.bench import train as bench_train
from gridconv.cli import main

CL = harness.CHANNELS_LAST


def test_channels_last_copies_only_where_the_formats_differ():
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    last = harness.channels_last(x)
    assert last is not None and last.is_contiguous(memory_format=torch.channels_last)
    assert last.requires_grad and torch.equal(last, x)
    volume = harness.channels_last(torch.randn(1, 2, 3, 3, 3))
    assert volume is not None and volume.is_contiguous(memory_format=torch.channels_last_3d)
    assert harness.channels_last(torch.randn(2, 1, 5, 5)) is None  # one channel: the same
    assert harness.channels_last(torch.randn(2, 3, 5)) is None  # 1-d: no such format


def test_best_format_takes_the_faster_and_says_which():
    assert harness.best_format({"torch": 2.0, "torch" + CL: 0.5}, "torch") == (0.5, "channels_last")
    assert harness.best_format({"torch": 0.4, "torch" + CL: 0.5}, "torch") == (0.4, "NCHW")
    assert harness.best_format({"torch": 0.4}, "torch") == (0.4, "NCHW")


def test_conv_suite_times_both_formats_and_reports_the_best_of_each():
    record = bench.time_case(bench.Case("t", 2, 4, 4, (24, 24), 7, 4), rounds=2)
    for column in ("torch conv2d", "auto"):
        assert {column, column + CL} <= set(record.seconds)
    t, fmt = record.best("torch")
    assert t == min(record.seconds["torch conv2d"], record.seconds["torch conv2d" + CL])
    assert fmt == ("NCHW" if t == record.seconds["torch conv2d"] else "channels_last")
    assert record.torch_over_auto() == pytest.approx(t / record.best("auto")[0])
    assert record.as_dict()["torch_best"]["format"] == fmt


@pytest.mark.parametrize("groups", [2, 4], ids=["grouped", "depthwise"])
def test_every_channels_last_train_candidate_computes_the_same_gradients(groups):
    case = bench_train.TrainCase(2, 4, 4, (12, 13), 5, groups)
    steps = bench_train.steps(case)
    assert {"auto" + CL, "torch conv2d" + CL} <= set(steps)
    grads = {}
    for name in ("torch conv2d", "auto" + CL, "torch conv2d" + CL):
        step, tensors = steps[name]
        for t in tensors:
            t.grad = None
        step()
        grads[name] = [t.grad.clone() for t in tensors]
    for name in ("auto" + CL, "torch conv2d" + CL):
        for ours, want in zip(grads[name], grads["torch conv2d"]):
            torch.testing.assert_close(ours, want, rtol=1e-4, atol=1e-4, msg=name)


def test_a_peer_that_fails_or_differs_is_left_out_with_one_line():
    reference = torch.arange(6.0).reshape(1, 1, 2, 3)

    def broken() -> object:
        raise RuntimeError("Shape dimension mismatch: expected 3 dimensions, got 4.\nmore")

    peers = {
        "good": lambda: reference.numpy().copy(),
        "reshaped": lambda: np.arange(6.0).reshape(2, 3),
        "broken": broken,
        "wrong": lambda: reference * 2,
        "short": lambda: reference[..., :2],
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept = harness.checked_peers(peers, reference)
    assert set(kept) == {"good", "reshaped"}
    messages = [str(w.message) for w in caught]
    assert len(messages) == 3 and all("\n" not in m for m in messages)
    assert any("'broken'" in m and "RuntimeError: Shape dimension mismatch" in m for m in messages)
    assert any("'wrong'" in m and "differs" in m for m in messages)


def test_every_installed_peer_is_timed_on_the_cases_it_computes():
    pytest.importorskip("kornia", reason="kornia is in the `bench` extra (dev)")
    pytest.importorskip("cv2", reason="opencv-python-headless is in the `bench` extra (dev)")
    case = bench.Case("t", 1, 3, 3, (40, 40), 9, 3, True)  # one Gaussian for every channel
    record = bench.time_case(case, rounds=1)
    peers = {"kornia fft_conv", "scipy fftconvolve", "scipy oaconvolve", "opencv filter2D"}
    assert peers <= set(record.seconds)
    quiet = bench.time_case(case, rounds=1, peers=False)
    assert not any(k.startswith(("scipy", "kornia", "opencv")) for k in quiet.seconds)


def test_fft_conv_pytorch_is_checked_and_timed():
    pytest.importorskip("fft_conv_pytorch", reason="fft-conv-pytorch is in the `bench` extra")
    *_, found = bench_train.forwards(bench_train.TrainCase(2, 3, 4, (20, 20), 5))
    assert "fft-conv-pytorch" in found


def test_every_suite_runs_with_every_peer(capsys):
    suites = [*bench.SUITES, "local", "train"]
    argv = ["bench", "--quick", "--rounds", "1", "--json"]
    with warnings.catch_warnings():
        # no peer left out: each installed one works
        warnings.filterwarnings("error", message="gridconv bench: peer")
        assert main([*argv, *(a for s in suites for a in ("--suite", s))]) == 0
    data = json.loads(capsys.readouterr().out)
    columns = {k for r in data["records"] for k in r["seconds"]}
    columns |= {k for r in data["train"] for k in r["seconds"]}
    wanted = {"scipy fftconvolve", "scipy oaconvolve", "scipy correlate", "fft-conv-pytorch"}
    for peer, module in (("kornia fft_conv", "kornia"), ("opencv filter2D", "cv2")):
        pytest.importorskip(module, reason=f"{module} is in the `bench` extra (dev)")
        wanted.add(peer)
    assert wanted <= columns
    assert {r["torch_best"]["format"] for r in data["records"]} <= {"NCHW", "channels_last"}
