"""What SB3 sees of our envs: which recurrent policy an observation space gets, its features
extractor (with a Python int width), and small images given as vectors."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv
from gymnasium.wrappers.vector import TransformObservation

from peers.sb3_vec_env import SB3_MISSING  # raises SB3_MISSING without the sb3 extra

try:
    from stable_baselines3.common.torch_layers import CombinedExtractor, FlattenExtractor
except ImportError as exc:
    raise ImportError(SB3_MISSING) from exc

__all__ = [
    "EXTRACTORS",
    "NATURE_CNN_MIN_SIDE",
    "POLICIES",
    "IntCombinedExtractor",
    "IntFlattenExtractor",
    "choose_policy",
    "small_images_as_vectors",
]

POLICIES = ("auto", "MlpLstmPolicy", "CnnLstmPolicy", "MultiInputLstmPolicy")


class _IntWidth:
    """An SB3 features extractor with a Python int width: for a MultiDiscrete observation SB3 sums
    numpy integers, and torch's LSTM refuses an ``np.int64`` input size (POPGym CountRecall, and
    MiniGrid's grid inside a Dict)."""

    def __init__(self, observation_space: spaces.Space, **kwargs: Any) -> None:
        super().__init__(observation_space, **kwargs)
        self._features_dim = int(self._features_dim)


class IntFlattenExtractor(_IntWidth, FlattenExtractor):
    """SB3's FlattenExtractor (MlpLstmPolicy), its width a Python int."""


class IntCombinedExtractor(_IntWidth, CombinedExtractor):
    """SB3's CombinedExtractor (MultiInputLstmPolicy), its width a Python int."""


#: the extractor that SB3 would use for a policy, with a Python int width
EXTRACTORS = {"MlpLstmPolicy": IntFlattenExtractor, "MultiInputLstmPolicy": IntCombinedExtractor}


def choose_policy(observation_space: spaces.Space, name: str = "auto") -> str:
    """SB3's policy for a (single-env) observation space: MultiInputLstmPolicy for ``Dict``,
    CnnLstmPolicy for uint8 images (C, H, W), else MlpLstmPolicy; ``name`` other than auto wins."""
    if name != "auto":
        if name not in POLICIES:
            raise ValueError(f"algo.policy must be one of {', '.join(POLICIES)}, got {name!r}")
        return name
    if isinstance(observation_space, spaces.Dict):
        return "MultiInputLstmPolicy"
    if (
        isinstance(observation_space, spaces.Box)
        and observation_space.dtype == np.uint8
        and len(observation_space.shape) == 3
    ):
        return "CnnLstmPolicy"
    return "MlpLstmPolicy"


#: SB3's image torso (NatureCNN) needs images at least this many pixels high and wide.
NATURE_CNN_MIN_SIDE = 36


def small_images_as_vectors(env: VectorEnv) -> VectorEnv:
    """Give SB3 uint8 images smaller than NatureCNN takes (MiniGrid's 7×7 view) as float vectors.

    SB3 puts a NatureCNN on every uint8 image, and its 8×8 stride-4 kernel cannot read a 7×7
    one; cast to float32, SB3 flattens it into its MLP instead. Other observations pass as they are.
    """
    space = env.single_observation_space
    parts = dict(space.spaces) if isinstance(space, spaces.Dict) else {None: space}
    small = [k for k, s in parts.items() if _is_small_image(s)]
    if not small:
        return env
    for key in small:
        parts[key] = spaces.Box(0.0, 255.0, parts[key].shape, np.float32)

    def cast(obs: Any) -> Any:
        if small == [None]:
            return obs.astype(np.float32)
        return {k: v.astype(np.float32) if k in small else v for k, v in obs.items()}

    single = parts[None] if None in parts else spaces.Dict(parts)
    return TransformObservation(env, cast, single_observation_space=single)


def _is_small_image(space: spaces.Space) -> bool:
    return (
        isinstance(space, spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) == 3
        and min(space.shape[1:]) < NATURE_CNN_MIN_SIDE
    )
