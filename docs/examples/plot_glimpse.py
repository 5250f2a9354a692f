"""
A foveated glimpse
==================

Section 9.10: the fovea sees a small patch sharply and its surroundings coarsely.
``gc.glimpse`` reads ``scales`` patches around a centre, each twice the extent of the last,
averaged down to the same number of cells. The recurrent attention model reads a few of
them instead of the whole image.
"""

import matplotlib.pyplot as plt
import torch

import gridconv as gc

train, _ = gc.data.load("mnist5k")
digits, labels = train.tensors[0][:4], train.tensors[1][:4]
canvas, labels, where = gc.data.cluttered(
    digits, labels, canvas=60, pieces=4, generator=torch.Generator().manual_seed(1)
)
# the centre of the first digit, in normalised coordinates: -1 and 1 are the first and
# last cell's centres
middle = (where[:1].float() + 13.5) / 59 * 2 - 1
seen = gc.glimpse(canvas[:1], middle, 8, scales=3)  # (1, 3, 1, 8, 8)
print("glimpse:", tuple(seen.shape), "values read:", seen.numel(), "of", canvas[0].numel())

# %%
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
axes[0].imshow(canvas[0, 0], cmap="gray")
row, col = where[0].tolist()
for k, color in zip(range(3), ("#e33", "#fa3", "#3ae")):
    side = 8 * 2**k
    top, left = row + 14 - side / 2 - 0.5, col + 14 - side / 2 - 0.5
    axes[0].add_patch(plt.Rectangle((left, top), side, side, fill=False, color=color))
    axes[k + 1].imshow(seen[0, k, 0], cmap="gray")
    axes[k + 1].set_title(f"scale {k}: {side}x{side} as 8x8")
axes[0].set_title(f"60x60 canvas, digit {labels[0].item()}")
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()
