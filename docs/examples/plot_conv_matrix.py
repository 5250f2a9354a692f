"""
Convolution as a sparse matrix
==============================

Section 9.5: a convolution is a linear map, so it is a matrix, with one copy of the kernel
in every row and zeros elsewhere. ``gc.conv_matrix`` builds it; its transpose is the
transposed convolution that back-propagation needs (eq. 9.13).
"""

import matplotlib.pyplot as plt
import torch

import gridconv as gc

g = torch.Generator().manual_seed(0)
w = torch.randn(1, 1, 3, 3, generator=g, dtype=torch.float64)
M = gc.conv_matrix(w, (6, 6), padding="same")  # (36, 36), sparse
dense = M.to_dense()
print(
    f"{M.shape[0]} x {M.shape[1]} matrix, {int((dense != 0).sum())} nonzeros "
    f"of {dense.numel()} ({(dense != 0).float().mean():.0%}), from {w.numel()} weights"
)

# %%
# Every row is the kernel, shifted; at the border the padding cuts it short.
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
axes[0].imshow(w[0, 0], cmap="coolwarm")
axes[0].set_title("kernel 3x3")
axes[1].imshow(dense, cmap="coolwarm", vmin=-dense.abs().max(), vmax=dense.abs().max())
axes[1].set_title('matrix of the "same" convolution of 6x6')
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()

# %%
# The matrix and the convolution agree, and so do the transposes.
x = torch.randn(1, 1, 6, 6, generator=g, dtype=torch.float64)
y = torch.randn(1, 1, 6, 6, generator=g, dtype=torch.float64)
forward = (M @ x.flatten() - gc.conv(x, w, padding="same").flatten()).abs().max()
adjoint = gc.conv_transpose(y, w, input_size=(6, 6), padding="same").flatten()
backward = (M.T @ y.flatten() - adjoint).abs().max()
print(f"M @ x against conv: {forward:.1e}; M.T @ y against conv_transpose: {backward:.1e}")
