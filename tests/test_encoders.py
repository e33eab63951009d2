"""Encoders by observation space; the image torsos' channels-last storage changes no number."""

import copy

import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents.encoders import CombinedEncoder, ImpalaCNN, MLPEncoder, NatureCNN, OneHotEncoder, make_encoder
from agents.policy import ActorCritic

TORSOS = {"nature": (NatureCNN, (4, 84, 84)), "impala": (ImpalaCNN, (3, 64, 64))}


@pytest.mark.parametrize("name", TORSOS)
def test_channels_last_torso_matches_the_contiguous_one(name):
    cls, shape = TORSOS[name]
    torch.manual_seed(0)
    fast = cls(*shape).double()
    ref = copy.deepcopy(fast).to(memory_format=torch.contiguous_format)
    convs = [m.weight for m in fast.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not any(
        m.weight.is_contiguous(memory_format=torch.channels_last)
        for m in ref.modules()
        if isinstance(m, torch.nn.Conv2d)
    )  # the reference really is the other layout
    obs = torch.randint(0, 256, (5, *shape), dtype=torch.uint8)
    out, want = fast(obs), ref(obs)
    assert out.shape == (5, fast.out_size)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    out.square().sum().backward()
    want.square().sum().backward()
    for (n, p), q in zip(fast.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, msg=n)


# --- encoders chosen per space, composed for Dict and Tuple spaces ------------------------------

VECTOR = spaces.Box(-1.0, 1.0, (3,), np.float32)
IMAGE = spaces.Box(0, 255, (3, 8, 8), np.uint8)


def test_existing_spaces_keep_their_encoders_and_parameter_names():
    """Checkpoints of agents on the spaces accepted before Dict support load unchanged."""
    assert list(make_encoder(VECTOR).state_dict()) == ["net.0.weight", "net.0.bias"]
    assert isinstance(make_encoder(spaces.Discrete(4)), OneHotEncoder)
    assert isinstance(make_encoder(spaces.MultiDiscrete([2, 3])), OneHotEncoder)
    assert isinstance(make_encoder(IMAGE), ImpalaCNN)
    assert isinstance(make_encoder(spaces.Box(0, 255, (4, 84, 84), np.uint8)), NatureCNN)


def test_dict_encoder_concatenates_one_encoder_per_key():
    torch.manual_seed(0)
    space = spaces.Dict({"cue": spaces.Discrete(3), "pos": VECTOR})  # gymnasium sorts: cue, pos
    enc = make_encoder(space, mlp_hidden=[5])
    assert isinstance(enc, CombinedEncoder) and enc.out_size == 3 + 5
    obs = {"cue": torch.tensor([2, 0]), "pos": torch.randn(2, 3)}
    out = enc(obs)
    torch.testing.assert_close(out[:, :3], torch.eye(3)[[2, 0]])
    torch.testing.assert_close(out[:, 3:], enc.encoders[1](obs["pos"]))
    mlp = MLPEncoder(3, [5])
    mlp.load_state_dict(enc.encoders[1].state_dict())
    torch.testing.assert_close(out[:, 3:], mlp(obs["pos"]))  # the part's own encoder, nothing mixed in
    out.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())


def test_tuple_encoder_reads_parts_by_index():
    enc = make_encoder(spaces.Tuple((IMAGE, spaces.Discrete(2))))
    out = enc((torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8), torch.tensor([1, 0, 1, 1])))
    assert out.shape == (4, enc.encoders[0].out_size + 2)
    torch.testing.assert_close(out[:, -2:], torch.eye(2)[[1, 0, 1, 1]])


def test_multibinary_is_a_vector():
    enc = make_encoder(spaces.MultiBinary(4), mlp_hidden=[6])
    assert enc(torch.tensor([[0, 1, 1, 0]], dtype=torch.int8)).shape == (1, 6)


def test_parts_no_encoder_takes_are_skipped_with_one_warning_and_none_left_raises():
    space = spaces.Dict({"mission": spaces.Text(8), "pos": VECTOR})
    with pytest.warns(UserWarning, match=r"skipped: 'mission' \(Text\)") as record:
        enc = make_encoder(space)
    assert len(record) == 1 and enc.keys == ["pos"]
    assert enc({"mission": ("go left",) * 2, "pos": torch.zeros(2, 3)}).shape == (2, 64)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="none of its parts can be encoded"):
        make_encoder(spaces.Dict({"mission": spaces.Text(8)}))


@pytest.mark.parametrize(
    "space",
    [spaces.Text(8), spaces.Box(-1.0, 1.0, (3, 4), np.float32), spaces.Box(0, 255, (3, 8, 8, 2), np.uint8)],
    ids=["text", "matrix-not-laid-out", "4d-uint8"],
)
def test_a_space_no_encoder_takes_raises_naming_it(space):
    with pytest.raises(ValueError, match=r"unsupported observation space"):
        make_encoder(space)


def test_actor_critic_on_a_dict_space():
    space = spaces.Dict({"image": IMAGE, "direction": spaces.Discrete(4)})
    agent = ActorCritic(space, spaces.Discrete(3), core="gru", hidden_size=8)
    obs = {"image": torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "direction": torch.tensor([0, 3])}
    x = agent.core_input(
        obs, torch.zeros(2, dtype=torch.long), torch.zeros(2), torch.ones(2, dtype=torch.bool)
    )
    assert x.shape == (2, agent.encoder.out_size + 3 + 1 + 1)


def test_a_wrong_torso_for_an_image_part_raises_rather_than_skipping_it():
    with pytest.raises(ValueError, match="encoder 'resnet' does not fit image space"):
        make_encoder(spaces.Dict({"image": IMAGE, "pos": VECTOR}), kind="resnet")
