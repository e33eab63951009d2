"""Gym env ids as gymnasium spells them: ``Id``, ``module:Id`` and ``module:Class``, and their errors."""

import sys
import textwrap

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from envs import make_vector_env

PACKAGE = "fake_env_pkg_i10"  # a package whose import registers an id, as minigrid and ale-py do
REGISTERED = "FakePkgCorridor-v0"


class Corridor(gymnasium.Env):
    """Walk right to the end of a short corridor; the observation is the position."""

    observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, length: int = 3) -> None:
        self.length, self.pos = length, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = 0
        return self._obs(), {}

    def step(self, action):
        self.pos = min(self.pos + int(action), self.length)
        return self._obs(), float(self.pos == self.length), self.pos == self.length, False, {}

    def _obs(self):
        return np.array([self.pos / self.length], np.float32)


class OddSizeEnv(Corridor):
    """Like minigrid's MemoryEnv: its default size trips a bare ``assert`` with no message."""

    def __init__(self, size: int = 8) -> None:
        super().__init__()
        self.size = size

    def reset(self, *, seed=None, options=None):
        if self.size % 2 != 1:
            raise AssertionError  # a bare assert, which pytest would rewrite in this file
        return super().reset(seed=seed)


@pytest.fixture
def package(tmp_path, monkeypatch):
    """An importable package that registers ``REGISTERED`` when imported (and only then)."""
    (tmp_path / PACKAGE).mkdir()
    (tmp_path / PACKAGE / "__init__.py").write_text(
        textwrap.dedent(f"""
            import gymnasium
            if {REGISTERED!r} not in gymnasium.registry:
                gymnasium.register({REGISTERED!r}, entry_point="{__name__}:Corridor", kwargs={{"length": 2}})
            """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield PACKAGE
    gymnasium.registry.pop(REGISTERED, None)
    sys.modules.pop(PACKAGE, None)


def _gym(env_id, **options):
    return make_vector_env({"name": "gym", "id": env_id, **options}, num_envs=2, seed=0)


def _episode_length(env) -> int:
    env.reset()
    for t in range(1, 20):
        _, _, terminated, _, _ = env.step(np.ones(env.num_envs, np.int64))
        if terminated.all():
            return t
    raise AssertionError("no episode ended")


def test_module_colon_id_imports_the_module_then_makes_the_id(package):
    env = _gym(f"{package}:{REGISTERED}")
    assert env.env_name == f"gym:{package}:{REGISTERED}"
    assert _episode_length(env) == 2  # the registered kwargs (length 2), not the class default (3)


def test_plain_id_needs_the_package_imported_and_says_how(package):
    with pytest.raises(ValueError, match=f"spell it 'package:{REGISTERED}'"):
        _gym(REGISTERED)
    __import__(package)
    assert _episode_length(_gym(REGISTERED)) == 2


def test_module_colon_class_builds_the_class_with_kwargs():
    assert _episode_length(_gym(f"{__name__}:Corridor", kwargs={"length": 4})) == 4


def test_plain_registered_id():
    env = _gym("CartPoleNoVel-v1")
    assert env.single_observation_space.shape == (2,)


def test_unknown_id_in_a_module_suggests_close_ids(package):
    with pytest.raises(ValueError, match=f"close registered ids: {REGISTERED}") as error:
        _gym(f"{package}:FakePkgCorridor-v1")
    assert "no env class or factory 'FakePkgCorridor-v1'" in str(error.value)


def test_unknown_plain_id_suggests_close_ids():
    with pytest.raises(ValueError, match="close registered ids: CartPoleNoVel-v1") as error:
        _gym("CartPoleNoVl-v1")
    assert "unknown gym env id 'CartPoleNoVl-v1'" in str(error.value)


def test_bare_assert_shows_its_type_and_where():
    with pytest.raises(ValueError, match="failed gymnasium's env checker: AssertionError") as error:
        _gym(f"{__name__}:OddSizeEnv")
    assert "in reset" in str(error.value)  # the frame that raised, since there is no message
    assert _episode_length(_gym(f"{__name__}:OddSizeEnv", kwargs={"size": 7})) == 3


@pytest.mark.minigrid
def test_minigrid_spelling_from_the_issue():
    pytest.importorskip("minigrid")
    env = _gym("minigrid:MiniGrid-MemoryS7-v0")
    assert set(env.single_observation_space.spaces) == {"direction", "image"}
    with pytest.raises(ValueError, match="AssertionError"):  # MemoryEnv's default size is even
        _gym("minigrid.envs:MemoryEnv")
    # the class path gets the same symbolic grid as the id: 7 x 7 cells of (object, colour, state)
    grid = _gym("minigrid.envs:MemoryEnv", kwargs={"size": 7}).single_observation_space["image"]
    assert grid == env.single_observation_space["image"] and grid.shape == (7 * 7 * 3,)
