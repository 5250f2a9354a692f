"""``gridconv bench``: gridconv against torch at its best and the peers, side by side.

One timing core (:mod:`.harness`: interleaved rounds, medians, peak memory in a fresh
process) and one module per suite: :mod:`.conv` (the inference suites: large kernels, many
channels, 1-D, 3-D, separable, the crossover sweep), :mod:`.local` (locally connected and
tiled layers against a convolution) and :mod:`.train` (a layer's forward + backward step).
Nothing here prints: the command line does.
"""

from gridconv.bench import conv, harness, local, train

__all__ = ["conv", "harness", "local", "train"]
