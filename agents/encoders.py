"""Observation encoders, chosen by the observation space."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor, nn

__all__ = ["CombinedEncoder", "ImpalaCNN", "MLPEncoder", "NatureCNN", "OneHotEncoder", "make_encoder"]


class OneHotEncoder(nn.Module):
    """Discrete or MultiDiscrete observations → concatenated one-hot vectors."""

    def __init__(self, nvec: list[int]) -> None:
        super().__init__()
        self.register_buffer("nvec", torch.as_tensor(nvec, dtype=torch.long), persistent=False)
        # follows .double()/.to(): the dtype the one-hot vectors are made in
        self.register_buffer("dtype_like", torch.zeros(()), persistent=False)
        self.out_size = int(sum(nvec))

    def forward(self, obs: Tensor) -> Tensor:  # (B,) or (B, K) integers -> (B, Σ n_k)
        obs = obs.long().reshape(obs.shape[0], -1)
        return torch.cat([F.one_hot(obs[:, k], int(n)) for k, n in enumerate(self.nvec.tolist())], dim=1).to(
            self.dtype_like.dtype
        )


class MLPEncoder(nn.Module):
    """Flat vector observations → an MLP (tanh, as SB3's default for on-policy agents)."""

    def __init__(self, in_size: int, hidden: list[int]) -> None:
        super().__init__()
        layers, size = [], in_size
        for h in hidden:
            layers += [nn.Linear(size, h), nn.Tanh()]
            size = h
        self.net = nn.Sequential(*layers)
        self.out_size = size

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs.flatten(1).to(_dtype_of(self)))


class _ImageEncoder(nn.Module):
    """A convolutional torso ``self.conv`` followed by a ReLU layer; pixels scaled to [0, 1].

    Weights and frames are kept channels-last: on CPU (oneDNN) that made the Nature torso's
    forward and backward 1.6× faster and the IMPALA torso's 1.6× (acting 3×); see the README.
    """

    conv: nn.Module

    def _head(self, channels: int, height: int, width: int, out_size: int) -> None:
        with torch.no_grad():
            n_flat = self.conv(torch.zeros(1, channels, height, width)).shape[1]
        self.fc = nn.Sequential(nn.Linear(n_flat, out_size), nn.ReLU())
        self.out_size = out_size
        self.to(memory_format=torch.channels_last)  # the 4-d conv weights; .to(device) keeps it

    def forward(self, obs: Tensor) -> Tensor:  # (B, C, H, W) uint8 -> (B, out_size)
        frames = obs.contiguous(memory_format=torch.channels_last)  # while still uint8: cheaper
        return self.fc(self.conv(frames.to(_dtype_of(self)) / 255.0))


class NatureCNN(_ImageEncoder):
    """Mnih et al. 2015's torso for (C, 84, 84) uint8 frames; pixels scaled to [0, 1]."""

    def __init__(self, channels: int, height: int, width: int, out_size: int = 512) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        self._head(channels, height, width, out_size)


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv1(F.relu(self.conv0(F.relu(x))))


class ImpalaCNN(_ImageEncoder):
    """Espeholt et al. 2018's residual torso (16, 32, 32 channels), as used for ProcGen."""

    def __init__(self, channels: int, height: int, width: int, out_size: int = 256) -> None:
        super().__init__()
        blocks, c = [], channels
        for depth in (16, 32, 32):
            blocks += [
                nn.Conv2d(c, depth, 3, padding=1),
                nn.MaxPool2d(3, 2, padding=1),
                _ResidualBlock(depth),
                _ResidualBlock(depth),
            ]
            c = depth
        self.conv = nn.Sequential(*blocks, nn.ReLU(), nn.Flatten())
        self._head(channels, height, width, out_size)


def _dtype_of(module: nn.Module) -> torch.dtype:
    """The module's floating dtype (float32 unless it was converted), for casting raw obs."""
    p = next(module.parameters(), None)
    return torch.get_default_dtype() if p is None else p.dtype


# The kinds of space make_encoder has an encoder for (some shapes of them still raise).
_ENCODABLE = (
    spaces.Box,
    spaces.Discrete,
    spaces.MultiDiscrete,
    spaces.MultiBinary,
    spaces.Dict,
    spaces.Tuple,
)


class CombinedEncoder(nn.Module):
    """Dict or Tuple observations: one encoder per part, outputs concatenated (SB3's CombinedExtractor).

    Parts of a kind no encoder takes (``Text``, ``Graph``, ...) are skipped with one warning naming
    them; the env factory has usually dropped them already (envs/observations.py).

    Args:
        space: a ``Dict`` (parts by key) or ``Tuple`` (parts by index) space.
        make_part: the encoder of one part's space.
    """

    def __init__(
        self, space: spaces.Dict | spaces.Tuple, make_part: Callable[[spaces.Space], nn.Module]
    ) -> None:
        super().__init__()
        items = space.spaces.items() if isinstance(space, spaces.Dict) else enumerate(space.spaces)
        self.keys: list[str | int] = []
        encoders, skipped = [], []
        for key, sub in items:
            if not isinstance(sub, _ENCODABLE):  # a wrong choice for a known space still raises
                skipped.append(f"{key!r} ({type(sub).__name__})")
                continue
            encoders.append(make_part(sub))
            self.keys.append(key)
        if skipped:
            warnings.warn(
                f"observation parts no encoder can take are skipped: {', '.join(skipped)}", stacklevel=3
            )
        if not encoders:
            raise ValueError(f"unsupported observation space {space}: none of its parts can be encoded")
        # A list beside the keys, not a ModuleDict: keys may hold dots ("arm.pos") or be indices.
        self.encoders = nn.ModuleList(encoders)
        self.out_size = sum(e.out_size for e in encoders)

    def forward(self, obs: Mapping[str, Tensor] | Sequence[Tensor]) -> Tensor:  # -> (B, Σ out_size)
        return torch.cat([enc(obs[key]) for key, enc in zip(self.keys, self.encoders, strict=True)], dim=1)


def make_encoder(space: spaces.Space, kind: str = "auto", mlp_hidden: list[int] | None = None) -> nn.Module:
    """Encoder for ``space``: one-hot for Discrete/MultiDiscrete, an MLP for 1-D Box vectors and
    MultiBinary, a Nature-CNN (``kind="nature"``) or IMPALA-ResNet (``"impala"``) for channels-first
    uint8 images (``"auto"`` picks Nature for 84x84 frames (Atari), IMPALA otherwise (ProcGen,
    MiniGrid)), and a :class:`CombinedEncoder` of these for Dict and Tuple spaces. Anything else
    raises, naming the space. The env factory has already laid observations out this way
    (channels-last images transposed, n-D Boxes flattened: envs/observations.py)."""
    mlp_hidden = [64] if mlp_hidden is None else list(mlp_hidden)
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        return CombinedEncoder(space, lambda sub: make_encoder(sub, kind, mlp_hidden))
    if isinstance(space, spaces.Discrete):
        return OneHotEncoder([int(space.n)])
    if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1:
        return OneHotEncoder([int(n) for n in space.nvec])
    if isinstance(space, spaces.MultiBinary) and len(space.shape) == 1:
        return MLPEncoder(int(space.shape[0]), mlp_hidden)
    if isinstance(space, spaces.Box):
        if space.dtype == np.uint8 and len(space.shape) == 3:
            if kind == "auto":  # Atari's 84x84 frames get Nature's torso, others (ProcGen) IMPALA's
                kind = "nature" if space.shape[1:] == (84, 84) else "impala"
            if kind == "impala":
                return ImpalaCNN(*space.shape)
            if kind == "nature":
                return NatureCNN(*space.shape)
            raise ValueError(f"encoder {kind!r} does not fit image space {space}; use nature or impala")
        if len(space.shape) == 1:
            return MLPEncoder(int(space.shape[0]), mlp_hidden)
        raise ValueError(
            f"unsupported observation space {space}: Box observations must be flat vectors or "
            "channels-first uint8 images (C, H, W)"
        )
    raise ValueError(
        f"unsupported observation space {space}: supported are Discrete, MultiDiscrete, MultiBinary, "
        "flat Box vectors, channels-first uint8 image Boxes, and Dict or Tuple spaces of these"
    )
