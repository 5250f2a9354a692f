"""
Padding: valid, same, full, and the padding modes
=================================================

The chapter's section 9.5: how a convolution treats the edges decides the size of its
output, and what the border units see. Here one blur, on a photograph, with each padding
and each padding mode.
"""

import matplotlib.pyplot as plt
import torch

import gridconv as gc

image = gc.data.natural_images("camera")[0][None, :, ::4, ::4]  # (1, 1, 128, 128)
blur = gc.kernels.gaussian(4.0)  # (1, 1, 25, 25), sums to 1

# %%
# ``"valid"`` shrinks the image by the kernel's extent less one, ``"same"`` keeps its size
# (with any stride: ``ceil(n / stride)``), ``"full"`` grows it to every partial overlap.
sizes = {p: gc.conv(image, blur, padding=p) for p in ("valid", "same", "full")}
for name, out in sizes.items():
    print(f"{name:>5}: {tuple(out.shape[-2:])}")
print(" same, stride 3:", tuple(gc.conv(image, blur, stride=3, padding="same").shape[-2:]))

# %%
# With zero padding the border darkens, because the kernel reads zeros past the edge; the
# other modes read the image itself: mirrored, repeated, or wrapped around.
modes = ("zeros", "reflect", "replicate", "circular")
fig, axes = plt.subplots(1, 5, figsize=(12, 2.8))
axes[0].imshow(image[0, 0], cmap="gray")
axes[0].set_title("input 128x128")
for ax, mode in zip(axes[1:], modes):
    out = gc.conv(image, blur, padding="same", padding_mode=mode)
    ax.imshow(out[0, 0], cmap="gray", vmin=0, vmax=1)
    ax.set_title(f'"same", {mode}')
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()

# %%
# The same call with ``torch.nn.functional.conv2d`` agrees wherever torch can express it.
reference = torch.nn.functional.conv2d(image, blur, padding="same")
print("largest difference from torch:", (sizes["same"] - reference).abs().max().item())
