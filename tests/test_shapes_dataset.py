"""dataset.shapes: the dataset plugin around the renderer follows the backbone's video spec."""

from __future__ import annotations

import pytest
import torch

import ndevgan_core as nd
from ndevgan_core.config import build_config
from ndevgan_plugins import shapes_render
from ndevgan_plugins.shapes import ShapesConfig, ShapesDataset


def test_items_follow_the_spec_and_match_the_renderer():
    ds = ShapesDataset(ShapesConfig(videos=10, seed=3), nd.VideoSpec(16, 32, 32))
    assert len(ds) == 10 and len(ds.class_names) == shapes_render.NUM_CLASSES
    item = ds[4]
    video = item["video"]
    assert video.shape == (3, 16, 32, 32) and video.dtype == torch.float32
    assert video.min() >= -1 and video.max() <= 1
    raw, label = shapes_render.render_video(4, 3, 16, 32)
    assert item["label"] == label
    back = ((video.permute(1, 2, 3, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    assert (back == raw).all()
    with pytest.raises(IndexError, match="has 10 clips"):
        ds[10]


def test_size_mismatch_with_backbone_is_a_clear_error():
    cfg = build_config(ShapesConfig, {"size": 64}, "dataset.shapes")
    with pytest.raises(nd.ConfigError, match="backbone needs 16×32×32.*16×64×64"):
        ShapesDataset(cfg, nd.VideoSpec(16, 32, 32))
