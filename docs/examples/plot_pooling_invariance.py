"""
Pooling and small translations
==============================

Section 9.3: max pooling makes a representation approximately invariant to small
translations of the input. ``gc.analysis.translation_sensitivity`` measures how much an
output moves, relative to its size, when the input shifts; here for random 3x3 features
of digits, with and without max pooling over growing windows.
"""

import matplotlib.pyplot as plt
import torch

import gridconv as gc

torch.manual_seed(0)
digits = gc.data.load("digits").train.tensors[0][:200]  # (200, 1, 8, 8) in [0, 1]
w = torch.randn(16, 1, 3, 3)


def features(pool: int):
    def model(x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(gc.conv(x, w, padding="same"))
        return y if pool == 1 else gc.pool(y, pool, stride=1, padding="same")

    return model


pools = (1, 2, 3, 4)
change = [
    gc.analysis.translation_sensitivity(features(p), digits, shifts=1).mean().item() for p in pools
]
for p, c in zip(pools, change):
    print(f"max pool {p}x{p}: relative change under a 1-pixel shift {c:.2f}")

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.bar([f"{p}x{p}" if p > 1 else "none" for p in pools], change, color="#58a")
ax.set_xlabel("max pooling window (stride 1)")
ax.set_ylabel("relative change, 1-pixel shift")
fig.tight_layout()
