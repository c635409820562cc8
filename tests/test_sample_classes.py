"""tools/sample_classes.py: the per-factor IS that splits a low IS into shapes and motions, and
how fast the sprites turn."""

import math
from types import SimpleNamespace

import pytest
import torch

from ndevgan_plugins.c3d import inception_score

from .conftest import load_tool


@pytest.fixture(scope="module")
def tool():
    """tools/sample_classes.py as a module."""
    return load_tool("sample_classes")


def test_every_class_once_and_sure_scores_25_of_which_5_for_shape_and_5_for_motion(tool):
    described = tool.describe(torch.eye(25))
    assert described["IS"] == pytest.approx(25, rel=1e-4)
    assert described["IS of shape alone"] == pytest.approx(5)
    assert described["IS of motion alone"] == pytest.approx(5)
    assert described["top p. of shape"] == described["top p. of motion"] == pytest.approx(1)
    assert described["classes used"] == 25


def test_a_sure_shape_with_an_unsure_motion_scores_on_shape_alone(tool):
    # Each clip: one shape for sure, its five motions equally likely (label = shape·5 + motion).
    probs = torch.zeros(10, 25)
    for clip in range(10):
        shape = clip % 5
        probs[clip, shape * 5 : shape * 5 + 5] = 0.2
    described = tool.describe(probs)
    assert described["IS of shape alone"] == pytest.approx(5)
    assert described["IS of motion alone"] == pytest.approx(1)
    assert described["top p. of motion"] == pytest.approx(0.2)
    assert described["IS"] == pytest.approx(inception_score(probs)[0], rel=1e-4)
    assert described["IS"] == pytest.approx(5, rel=1e-4)


def test_turns_per_frame_reads_the_angle_code_at_the_generators_gain(tool):
    # Angle code rising 0.1 a frame at π radians a unit: π/10 radians, 1/20 turn; the other
    # codes do not count. At a quarter of the gain, a quarter of the turning.
    poses = torch.zeros(2, 16, 4)
    poses[0, :, 2] = 0.1 * torch.arange(16)
    poses[1, :, 2] = -0.3 * torch.arange(16)
    poses[1, :, :2] = torch.randn(16, 2)
    expected = torch.tensor([0.05, 0.15])
    torch.testing.assert_close(tool.turns_per_frame([poses], math.pi), expected)
    torch.testing.assert_close(tool.turns_per_frame([poses], math.pi / 4), expected / 4)


def test_holding_a_pose_part_keeps_its_first_frame_value_inside_the_block_only(tool):
    torch.manual_seed(0)
    pose = torch.nn.Linear(2, 4)
    sprite = SimpleNamespace(generator=SimpleNamespace(image=SimpleNamespace(pose=pose)))
    x = torch.randn(3, 5, 2)
    free = pose(x)
    with tool.holding_sprite_pose(sprite, "position"):
        held = pose(x)
    torch.testing.assert_close(held[:, :, :2], free[:, :1, :2].expand(3, 5, 2))
    torch.testing.assert_close(held[:, :, 2:], free[:, :, 2:])
    assert (free[:, 1:, :2] - free[:, :1, :2]).abs().min() > 0
    with tool.holding_sprite_pose(sprite, "angle"):
        held = pose(x)
    torch.testing.assert_close(held[:, :, 2], free[:, :1, 2].expand(3, 5))
    torch.testing.assert_close(pose(x), free)  # after the block: the hook is gone


def test_sprite_poses_are_recorded_inside_the_block_only(tool):
    pose = torch.nn.Linear(2, 4)
    sprite = SimpleNamespace(generator=SimpleNamespace(image=SimpleNamespace(pose=pose)))
    with tool.recording_sprite_poses(sprite) as poses:
        pose(torch.zeros(3, 5, 2))
    pose(torch.zeros(3, 5, 2))  # after the block: the hook is gone
    assert len(poses) == 1 and poses[0].shape == (3, 5, 4)
    other = SimpleNamespace(generator=SimpleNamespace(image=SimpleNamespace()))
    with tool.recording_sprite_poses(other) as poses:
        pass
    assert poses == []


def test_clips_of_a_code_come_from_latents_in_that_codes_interval(tool):
    from ndevgan_plugins.tgan import shape_code_of

    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, z):
            seen.append(z.clone())
            return z[:, :, None, None, None].expand(-1, -1, 2, 1, 1)  # (B, C = D, T, 1, 1)

    recorder = Recorder()
    recorder.image = SimpleNamespace(shape_code=5)
    recorder.sample_z = lambda n, rng: torch.rand(n, 6, generator=rng) * 2 - 1
    generator = SimpleNamespace(generator=recorder)
    for code in range(5):
        clips = tool.clips_of_code(generator, code, 40, seed=0)
        assert clips.shape == (40, 2, 6, 1, 1)  # (N, T, C, H, W)
        assert shape_code_of(seen[-1], 5).tolist() == [code] * 40
    # inside its interval the first coordinate still varies; the others are as drawn
    assert seen[-1][:, 0].std() > 0.05
    assert torch.equal(seen[0][:, 1:], seen[1][:, 1:])
