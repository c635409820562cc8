"""tools/sample_classes.py: the per-factor IS that splits a low IS into shapes and motions."""

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
