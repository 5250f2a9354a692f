"""The compiled 1-D overlap-save path: the same results as direct, where it runs, and the
fallback to torch's ops wherever it cannot."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gridconv as gc
from gridconv import _native
from gridconv.functional._spec import setup
from gridconv.functional.methods.fft import overlap_save

HAVE_COMPILER = shutil.which(os.environ.get("CC") or "gcc") is not None


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b).abs().max() / b.abs().max())


def reference(x: torch.Tensor, w: torch.Tensor, bias=None, **kwargs) -> torch.Tensor:
    b = None if bias is None else bias.double()
    return gc.conv(x.double(), w.double(), b, method="direct", **kwargs)


@pytest.fixture
def compiled_calls(monkeypatch):
    """Records the calls of the compiled kernel: a forward's valid length, a backward's
    ("backward", (input gradient wanted, kernel gradient wanted))."""
    calls = []
    forward, backward = _native.overlap_save, _native.backward

    def spy_forward(*args, **kwargs):
        calls.append(args[-1])
        return forward(*args, **kwargs)

    def spy_backward(*args, **kwargs):
        calls.append(("backward", args[-1]))
        return backward(*args, **kwargs)

    monkeypatch.setattr(_native, "overlap_save", spy_forward)
    monkeypatch.setattr(_native, "backward", spy_backward)
    return calls


def test_the_kernels_build_wherever_there_is_a_compiler():
    """Not a skip in disguise: with gcc on the machine, the compiled path must be there."""
    if HAVE_COMPILER and sys.platform.startswith("linux"):
        assert _native.available()


needs_kernels = pytest.mark.skipif(
    not _native.available(), reason="no C compiler or GNU OpenMP runtime on this machine"
)


@needs_kernels
@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(1, 3),
    groups=st.sampled_from([1, 2, 3]),
    group_in=st.integers(1, 5),
    group_out=st.integers(1, 9),
    n=st.integers(1, 700),
    k=st.integers(1, 40),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 3),
    padding=st.sampled_from(["valid", "same", "full", 5, ((3, 8),)]),
    padding_mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
)
def test_agrees_with_direct_in_float32(
    batch, groups, group_in, group_out, n, k, stride, dilation, padding, padding_mode
):
    span = dilation * (k - 1) + 1
    if padding not in ("same", "full") or padding_mode == "reflect":
        n = max(n, span + 1)  # fits the kernel; reflect needs padding shorter than the input
    C, O = groups * group_in, groups * group_out
    g = torch.Generator().manual_seed(n * 31 + k)
    x = torch.randn(batch, C, n, generator=g)
    w = torch.randn(O, group_in, k, generator=g)
    bias = torch.randn(O, generator=g)
    kw = dict(
        stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode
    )
    _, spec, _ = setup(x, w, bias, **kw)
    assert overlap_save.applies(spec, x.device.type, x.dtype, w.shape[0])
    out = gc.fft_conv(x, w, bias, **kw)
    ref = reference(x, w, bias, **kw)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert relative_error(out, ref) <= 1e-5
    # trained: both gradients from the compiled backward, against the direct method's
    xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
    xr, wr = x.double().requires_grad_(), w.double().requires_grad_()
    grad = torch.randn(ref.shape, generator=g)
    out = gc.fft_conv(xs, ws, **kw)
    assert type(out.grad_fn).__name__ == "CompiledFFTConvBackward"
    out.backward(grad)
    gc.conv(xr, wr, method="direct", **kw).backward(grad.double())
    # float32 FFTs round at the scale of the transformed signals, not of each result: a
    # gradient entry near zero (a stride that skips input cells, a tap that only meets the
    # padding) carries rounding of about 1e-7 of |grad| * |x| or |grad| * |w|
    scale = grad.abs().max() * max(x.abs().max(), w.abs().max())
    for ours, theirs in ((xs.grad, xr.grad), (ws.grad, wr.grad)):
        assert (ours.double() - theirs).abs().max() <= 1e-5 * max(theirs.abs().max(), scale)


@needs_kernels
@pytest.mark.parametrize("length", [16, 32, 64, 128, 256, 512, 1024, 2048, 4096])
def test_every_transform_length(monkeypatch, length, compiled_calls):
    """Radix-4 stages only (L = 2 * 4^j) and a last radix-2 stage; tiles that end inside a
    group of eight lanes, and groups of lanes spanning two images."""
    monkeypatch.setattr(overlap_save, "SHORTEST", length)
    monkeypatch.setattr(overlap_save, "LONGEST", length)
    overlap_save.compiled_length.cache_clear()
    try:
        x, w = torch.randn(3, 5, 3000), torch.randn(6, 5, 5)
        out = gc.fft_conv(x, w, padding="same")
    finally:
        overlap_save.compiled_length.cache_clear()
    assert compiled_calls == [3000]
    assert relative_error(out, reference(x, w, padding="same")) <= 1e-5


@needs_kernels
def test_the_benchmark_shape_runs_compiled(compiled_calls):
    x, w = torch.randn(4, 8, 65536), torch.randn(8, 8, 64)
    out = gc.conv(x, w, padding="same")  # auto: the FFT, compiled
    assert compiled_calls == [65536]
    assert relative_error(out, reference(x, w, padding="same")) <= 1e-5


@needs_kernels
def test_half_precision_is_computed_in_float32(compiled_calls):
    x, w = torch.randn(2, 4, 500), torch.randn(3, 4, 20)
    out = gc.fft_conv(x.half(), w.half(), padding="same")
    assert out.dtype == torch.float16 and compiled_calls
    ref = reference(x.half().float(), w.half().float(), padding="same")
    assert relative_error(out.float(), ref) <= 1e-3


@needs_kernels
@pytest.mark.parametrize("stride, mode", [(1, "zeros"), (3, "reflect")])
def test_the_compiled_path_trains_and_float64_takes_torchs(compiled_calls, stride, mode):
    """With a gradient to x or w, the compiled kernel runs the forward and the backward,
    both gradients or the one wanted. Gradients match the direct method's."""
    x, w = torch.randn(2, 4, 300), torch.randn(6, 2, 20)
    kw = dict(padding="same", stride=stride, groups=2, padding_mode=mode)
    for want_x, want_w in ((True, False), (False, True), (True, True)):
        xs, ws = x.clone().requires_grad_(want_x), w.clone().requires_grad_(want_w)
        compiled_calls.clear()
        out = gc.fft_conv(xs, ws, **kw)
        g = torch.randn_like(out)
        out.backward(g)
        assert type(out.grad_fn).__name__ == "CompiledFFTConvBackward"
        padded = 300 + max((-(-300 // stride) - 1) * stride + 20 - 300, 0)  # "same"
        assert compiled_calls == [padded - 19, ("backward", (want_x, want_w))]
        xr, wr = x.double().requires_grad_(want_x), w.double().requires_grad_(want_w)
        gc.conv(xr, wr, method="direct", **kw).backward(g.double())
        for ours, ref in ((xs, xr), (ws, wr)):
            assert (ours.grad is None) == (ref.grad is None)
            if ref.grad is not None:
                assert relative_error(ours.grad, ref.grad) < 1e-5
    compiled_calls.clear()
    gc.fft_conv(x.double(), w.double(), **kw)
    assert compiled_calls == []


@needs_kernels
@pytest.mark.parametrize("dilation", [1, 3])
def test_where_the_sums_per_channel_pair_take_too_much_memory(
    monkeypatch, compiled_calls, dilation
):
    """The kernel gradient's sums per channel pair and frequency are 8 lanes each, per
    thread: over ACCUMULATOR_MAX_BYTES, the kernel's gradient is torch's FFTs', the input's
    still the compiled kernel's. Either way they match the direct method's."""
    x, w = torch.randn(3, 4, 500), torch.randn(8, 4, 9)
    kw = dict(padding="same", dilation=dilation)
    g = torch.randn(3, 8, 500)
    xr, wr = x.double().requires_grad_(), w.double().requires_grad_()
    gc.conv(xr, wr, method="direct", **kw).backward(g.double())
    for limit, compiled_w in ((overlap_save.ACCUMULATOR_MAX_BYTES, True), (0, False)):
        monkeypatch.setattr(overlap_save, "ACCUMULATOR_MAX_BYTES", limit)
        xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
        compiled_calls.clear()
        gc.fft_conv(xs, ws, **kw).backward(g)
        assert compiled_calls[1:] == [("backward", (True, compiled_w))]
        assert relative_error(xs.grad, xr.grad) < 1e-5
        assert relative_error(ws.grad, wr.grad) < 1e-5


@needs_kernels
def test_the_compiled_paths_double_backward_goes_through_autograd():
    x = torch.randn(1, 2, 50, requires_grad=True)
    w = torch.randn(2, 2, 7, requires_grad=True)
    (gx,) = torch.autograd.grad(
        gc.fft_conv(x, w, padding="same").pow(2).sum(), x, create_graph=True
    )
    gx.sum().backward()
    xr, wr = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    out = gc.conv(xr, wr, padding="same", method="direct").pow(2).sum()
    (gxr,) = torch.autograd.grad(out, xr, create_graph=True)
    gxr.sum().backward()
    assert relative_error(w.grad, wr.grad) < 1e-4


@needs_kernels
def test_eval_layers_cache_the_compiled_kernel(compiled_calls, monkeypatch):
    prepared = []
    real = overlap_save.prepare
    monkeypatch.setattr(overlap_save, "prepare", lambda w, s: prepared.append(1) or real(w, s))
    layer = gc.nn.Conv1d(4, 6, 33, padding="same", method="fft").eval()
    x = torch.randn(2, 4, 1000)
    with torch.no_grad():
        first = layer(x)
        layer(x)
        assert len(prepared) == 1 and len(compiled_calls) == 2
        layer.weight.mul_(2)
        torch.testing.assert_close(
            layer(x) - layer.bias[:, None], 2 * (first - layer.bias[:, None])
        )
    assert len(prepared) == 2


def test_no_compiled_kernel_below_two_taps_per_output_or_beyond_the_workspace():
    assert overlap_save.compiled_length(65536 + 63, 64, 8, 8, 1) in (512, 1024, 2048)
    assert overlap_save.compiled_length(100, 100, 1, 1, 1) == 128  # one tile, one output
    huge = overlap_save.compiled_length(10**6, 2**16, 512, 512, 1)
    assert huge is None  # no power of two fits 512 channels' spectra of 2^17 points


def test_a_bad_input_to_the_kernel_gets_a_value_error():
    if not _native.available():
        pytest.skip("no compiled kernels here")
    packed = _native.pack(torch.zeros(4, 2, 9, dtype=torch.complex64), 1)
    with pytest.raises(ValueError, match="x: expected a contiguous float32"):
        _native.overlap_save(torch.zeros(1, 2, 20, dtype=torch.float64), packed, 4, 1, 9, 16, 10)
    with pytest.raises(ValueError, match=">= 25"):  # two tiles of 9 need 9 + 16 points
        _native.overlap_save(torch.zeros(1, 2, 20), packed, 4, 1, 9, 16, 18)
    with pytest.raises(ValueError, match="power of two"):
        _native.overlap_save(torch.zeros(1, 2, 40), packed, 4, 1, 9, 24, 10)
    with pytest.raises(ValueError, match="packed: expected float32"):
        _native.overlap_save(torch.zeros(1, 2, 40), packed, 4, 1, 17, 32, 10)


def _library_in(env: dict[str, str]) -> subprocess.CompletedProcess:
    code = (
        "import warnings, torch; warnings.simplefilter('always')\n"
        "from gridconv import _native; import gridconv as gc\n"
        "print('library', _native.library() is not None)\n"
        "x, w = torch.randn(2, 3, 400), torch.randn(4, 3, 30)\n"
        "ref = torch.nn.functional.conv1d(x, w)\n"
        "print('close', torch.allclose(gc.fft_conv(x, w), ref, atol=1e-4))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_switched_off_or_without_a_compiler_torch_ops_run(tmp_path):
    off = _library_in({"GRIDCONV_NATIVE": "0", "GRIDCONV_CACHE": str(tmp_path / "a")})
    assert "library False" in off.stdout and "close True" in off.stdout, off.stderr
    assert not (tmp_path / "a").exists()
    missing = _library_in({"CC": str(tmp_path / "no-cc"), "GRIDCONV_CACHE": str(tmp_path / "b")})
    assert "library False" in missing.stdout and "close True" in missing.stdout, missing.stderr
    assert "compiled kernels unavailable" in missing.stderr
    assert list((tmp_path / "b").glob("*.tmp")) == []  # the failed build left nothing


@pytest.mark.skipif(not HAVE_COMPILER, reason="needs a C compiler")
def test_an_unwritable_cache_falls_back_to_a_private_temporary_directory(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    temp = tmp_path / "tmp"
    temp.mkdir()
    run = _library_in({"GRIDCONV_CACHE": str(blocked / "cache"), "TMPDIR": str(temp)})
    assert "library True" in run.stdout and "close True" in run.stdout, run.stderr
    (private,) = temp.iterdir()
    assert private.name.startswith("gridconv-") and (private.stat().st_mode & 0o777) == 0o700
    assert len(list(private.glob("*.so"))) == 1


@pytest.mark.skipif(not HAVE_COMPILER, reason="needs a C compiler")
def test_two_processes_building_at_once_both_load_a_whole_library(tmp_path):
    env = {**os.environ, "GRIDCONV_CACHE": str(tmp_path)}
    code = "from gridconv import _native; print(_native.library() is not None)"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(out.strip() == "True" for out in outs)
    assert len(list(tmp_path.glob("*.so"))) == 1 and not list(tmp_path.glob("*.tmp"))


def test_a_build_that_fails_warns_and_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDCONV_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # a compiler that always fails
    _native.library.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert _native.library() is None
        assert any("compiled kernels unavailable" in str(c.message) for c in caught)
        assert not list(tmp_path.glob("*"))
    finally:
        _native.library.cache_clear()
