"""
Converting an existing model, layer by layer
============================================

A model written with ``torch.nn`` layers, here a small ConvNeXt-like network whose
depthwise kernels grow to 31x31 (the size RepLKNet uses), is converted in one call by
``gc.nn.convert``. It computes the same function: the outputs agree to rounding in float64.
``gc.analysis.layer_table`` then shows, for each convolution, the method auto picks for
training and for inference and what each layer costs in torch and in gridconv, measured
on the machine that builds these pages (the converted model against the original, torch
in the memory format the model hands it).
"""

import matplotlib.pyplot as plt
import torch
from torch import nn

import gridconv as gc


class Block(nn.Module):
    """A ConvNeXt block: depthwise k x k, LayerNorm over channels, a pointwise MLP."""

    def __init__(self, dim: int, k: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim)
        self.norm = nn.GroupNorm(1, dim)
        self.up = nn.Conv2d(dim, 4 * dim, 1)
        self.down = nn.Conv2d(4 * dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(torch.nn.functional.gelu(self.up(self.norm(self.dw(x)))))


torch.manual_seed(0)
model = nn.Sequential(
    nn.Conv2d(3, 32, 4, stride=4),  # patchify stem
    *(Block(32, k) for k in (7, 13, 21, 31)),
)

# The same function: compare in float64.
x64 = torch.randn(2, 3, 96, 96, dtype=torch.float64)
converted = gc.nn.convert(model.double())
error = (converted(x64) - model(x64)).norm() / model(x64).norm()
print(f"relative error of the converted model, float64: {error:.1e}")

model.float()
x = torch.randn(4, 3, 128, 128)
with gc.planning("measure"):
    rows = gc.analysis.layer_table(model, x, rounds=3)
for r in rows:
    print(
        f"{r.name:10} k={r.kernel[0]:2}  auto: {r.method_train:6} / {r.method_infer:6}  "
        f"train torch {r.torch_train * 1e3:6.2f} ms, gridconv {r.gridconv_train * 1e3:6.2f} ms"
    )

depthwise = [r for r in rows if r.groups > 1]
labels = [f"{r.kernel[0]}x{r.kernel[1]}" for r in depthwise]
fig, ax = plt.subplots(figsize=(6, 3.5))
positions = range(len(depthwise))
ax.bar([p - 0.2 for p in positions], [r.torch_train * 1e3 for r in depthwise], 0.4, label="torch")
ax.bar([p + 0.2 for p in positions], [r.gridconv_train * 1e3 for r in depthwise], 0.4,
       label="gridconv (converted)")  # fmt: skip
ax.set_xticks(list(positions), labels)
ax.set_xlabel("depthwise kernel")
ax.set_ylabel("training step of the layer (ms)")
ax.set_title("One call converts the model; large kernels gain")
ax.legend()
fig.tight_layout()
plt.show()
