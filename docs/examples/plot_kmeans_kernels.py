"""
Kernels learned without labels: k-means on photographs
======================================================

Sections 9.9 and 9.10: k-means on whitened image patches (Coates & Ng 2012) learns
oriented edges and bars, much like the Gabor-like simple cells of V1 and the first layer
of a trained network. No label is used.
"""

import matplotlib.pyplot as plt
import torch

import gridconv as gc

images = gc.data.natural_images()  # scikit-image's photographs, gray, in [0, 1]
learned = gc.kernels.kmeans_kernels(
    images, 36, 8, num_patches=10_000, generator=torch.Generator().manual_seed(0)
)
fit = gc.kernels.fit_gabor(learned.kernels[:, 0])
print(
    f"{len(learned.kernels)} kernels of 8x8; "
    f"{(fit.r2 >= 0.6).float().mean():.0%} are Gabor-like (R² >= 0.6)"
)


def show(kernels: torch.Tensor, columns: int, title: str) -> None:
    """One panel per kernel, each scaled to its own range (``gc.plot.kernel_grid`` draws
    the same grid into a figure of its own, for saving)."""
    rows = -(-len(kernels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.7, rows * 0.7 + 0.4))
    for ax, kernel in zip(axes.flat, kernels[:, 0]):
        ax.imshow(kernel, cmap="gray")
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle(title)


# %%
show(learned.kernels, 9, "k-means kernels, 8x8, from photographs")

# %%
# A Gabor bank, for comparison: every orientation and both phases at one frequency.
show(gc.kernels.gabor_bank(11, orientations=8, frequencies=(1.0,)), 8, "Gabor bank")
