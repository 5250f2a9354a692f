"""The README's code runs as written: the tour and the backward-pass example."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    # The last block ends by comparing x.grad with conv_transpose of the output gradient.
    x, g, w = namespace["x"], namespace["g"], namespace["w"]
    gx = namespace["gc"].conv_transpose(g, w, input_size=x.shape, stride=2, padding="same")
    torch.testing.assert_close(x.grad, gx)
    assert namespace["M"].shape == (16 * 29 * 29, 3 * 32 * 32)
