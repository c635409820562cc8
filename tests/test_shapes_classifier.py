"""The shapes classifier shipped for IS/FID on ``dataset.shapes``: the file, its accuracy on
clips it never saw, its scores, its input handling, and that training it is reproducible."""

from __future__ import annotations

import ast
import re

import numpy as np
import pytest
import torch

import ndevgan_core as nd
from ndevgan_plugins import shapes_render
from ndevgan_plugins.c3d import inception_score
from ndevgan_plugins.shapes import REFERENCE_CLASSIFIER, ShapesConfig, ShapesDataset
from ndevgan_plugins.shapes_classifier import (
    FORMAT,
    ShapesClassifier,
    ShapesClassifierConfig,
    load_shapes_classifier,
    resize_videos,
    save_shapes_classifier,
)

from .conftest import ROOT, load_tool

# Seed 0 trains the shipped file and seed 1000 validates it (tools/train_shapes_c3d.py).
HELD_OUT_SEED = 4242
HELD_OUT_PER_SIZE = 96
MIN_ACCURACY = 0.90


def as_float(videos: np.ndarray) -> torch.Tensor:
    """uint8 (N, T, H, W, 3) → float (N, 3, T, H, W) in [-1, 1], as dataset.shapes gives."""
    return torch.from_numpy(videos).permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)


@pytest.fixture(scope="module")
def shipped() -> ShapesClassifier:
    return load_shapes_classifier(REFERENCE_CLASSIFIER)


@pytest.fixture(scope="module")
def held_out(shipped) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Per size: (probs, labels) of the shipped classifier on clips of an unused seed, half
    on each background, scored at their own size (the classifier resizes)."""
    results = {}
    with torch.no_grad():
        for size in (32, 48, 64):
            probs, labels = [], []
            for background, start in (("dark", 0), ("noise", HELD_OUT_PER_SIZE // 2)):
                first = size * 1000 + start  # other clips at each size
                indices = range(first, first + HELD_OUT_PER_SIZE // 2)
                videos, batch_labels = shapes_render.render_batch(
                    indices, HELD_OUT_SEED, 16, size, background=background
                )
                probs.append(shipped(as_float(videos))["probs"])
                labels.append(torch.from_numpy(batch_labels))
            results[size] = (torch.cat(probs), torch.cat(labels))
    return results


def test_shipped_file_loads_weights_only_with_complete_metadata(shipped):
    payload = torch.load(REFERENCE_CLASSIFIER, map_location="cpu", weights_only=True)
    assert payload["format"] == FORMAT and payload["version"] == 1
    assert payload["class_names"] == [
        shapes_render.class_name(i) for i in range(shapes_render.NUM_CLASSES)
    ]
    meta = payload["metadata"]
    for key in ("command", "seed", "steps", "train_accuracy", "val_accuracy", "val_seed"):
        assert key in meta, key
    assert meta["command"].startswith("python tools/train_shapes_c3d.py")
    assert meta["dataset"]["sizes"] == [32, 48, 64]
    assert set(meta["dataset"]["backgrounds"]) == {"dark", "noise"}
    assert meta["torch_version"] and meta["val_accuracy"] >= MIN_ACCURACY
    assert HELD_OUT_SEED not in (meta["seed"], meta["val_seed"])
    assert ShapesClassifierConfig(**payload["config"]) == shipped.config
    assert REFERENCE_CLASSIFIER.stat().st_size < 2 * 1024 * 1024
    assert isinstance(shipped, nd.VideoClassifier) and not shipped.training
    assert (shipped.num_classes, shipped.feature_size) == (25, 256)
    assert re.fullmatch("[0-9a-f]{16}", shipped.weights_id)


def test_dataset_names_the_shipped_file_without_importing_the_classifier():
    dataset = ShapesDataset(ShapesConfig(videos=4), nd.VideoSpec(16, 32, 32))
    assert dataset.reference_classifier() == str(REFERENCE_CLASSIFIER)
    assert REFERENCE_CLASSIFIER.is_file()
    source = (ROOT / "plugins" / "ndevgan_plugins" / "shapes.py").read_text()
    imported: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported += [node.module or "", *(alias.name for alias in node.names)]
    assert "shapes_render" in imported  # the check sees the dataset's own imports
    assert not any("shapes_classifier" in name for name in imported)


@pytest.mark.parametrize("size", [32, 48, 64])
def test_shipped_classifier_is_accurate_on_an_unseen_seed(held_out, size):
    probs, labels = held_out[size]
    accuracy = (probs.argmax(dim=1) == labels).float().mean().item()
    assert accuracy >= MIN_ACCURACY, f"{size} px: accuracy {accuracy:.3f}"


def test_inception_score_of_real_clips_beats_noise_and_grey(shipped, held_out):
    real = torch.cat([held_out[size][0] for size in (32, 64)])
    generator = torch.Generator().manual_seed(0)
    noise_videos = torch.rand(len(real), 3, 16, 32, 32, generator=generator) * 2 - 1
    with torch.no_grad():
        noise = shipped(noise_videos)["probs"]
        grey = shipped(torch.zeros(8, 3, 16, 48, 48))["probs"]
    real_is, noise_is, grey_is = (inception_score(p)[0] for p in (real, noise, grey))
    # A confident classifier over 25 balanced classes: IS near 25 on real clips; identical
    # grey videos all get one prediction, so p(y|x) = p(y) and IS is exactly 1.
    assert real_is > 15.0
    assert real_is > 3 * noise_is
    assert grey_is == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    ("frames", "height", "width"),
    [(16, 32, 32), (16, 64, 64), (8, 48, 48), (1, 20, 24), (24, 64, 40)],
)
def test_forward_shapes_probabilities_and_batch_independence(shipped, frames, height, width):
    generator = torch.Generator().manual_seed(frames * height + width)
    videos = torch.rand(3, 3, frames, height, width, generator=generator) * 2 - 1
    with torch.no_grad():
        out = shipped(videos)
        again = shipped(videos)
        alone = shipped(videos[1:2])
    assert out["features"].shape == (3, 256) and out["probs"].shape == (3, 25)
    assert torch.allclose(out["probs"].sum(dim=1), torch.ones(3), atol=1e-6)
    assert (out["features"] >= 0).all()
    assert torch.equal(out["probs"], again["probs"])
    assert torch.allclose(alone["features"], out["features"][1:2], atol=1e-5)


def test_resize_matches_area_averaging_and_linear_time_interpolation():
    generator = torch.Generator().manual_seed(1)
    small = torch.rand(2, 3, 16, 32, 32, generator=generator)
    big = small.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)
    assert torch.allclose(resize_videos(big, 32, 16), small, atol=1e-6)
    ramp = torch.arange(9, dtype=torch.float32).reshape(1, 1, 9, 1, 1).expand(1, 3, 9, 4, 4)
    resampled = resize_videos(ramp, 4, 16)[0, 0, :, 0, 0].numpy()
    expected = np.interp(np.linspace(0, 1, 16), np.linspace(0, 1, 9), np.arange(9.0))
    assert np.allclose(resampled, expected, atol=1e-5)
    still = resize_videos(small[:, :, :1], 32, 16)
    assert torch.equal(still, small[:, :, :1].expand(-1, -1, 16, -1, -1))
    with pytest.raises(nd.ConfigError, match=r"expected videos \(B, 3, T, H, W\)"):
        ShapesClassifier()(torch.zeros(2, 16, 32, 32))


def test_training_is_reproducible_from_a_seed():
    tool = load_tool("train_shapes_c3d")
    config = ShapesClassifierConfig(channels=(4, 8, 8, 8), feature_size=16)
    first, _ = tool.train(seed=3, steps=3, batch_size=4, config=config, progress=False)
    second, _ = tool.train(seed=3, steps=3, batch_size=4, config=config, progress=False)
    other, _ = tool.train(seed=4, steps=3, batch_size=4, config=config, progress=False)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name
    assert first.weights_id == second.weights_id != other.weights_id


def test_save_load_round_trip_and_wrong_files_are_rejected(tmp_path):
    torch.manual_seed(0)
    config = ShapesClassifierConfig(channels=(4, 8, 8, 8), feature_size=16)
    model = ShapesClassifier(config).eval()
    path = save_shapes_classifier(tmp_path / "c.pt", model, {"seed": 0, "note": ["a", 1.5]})
    loaded = load_shapes_classifier(path)
    videos = torch.rand(2, 3, 16, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(videos)["probs"], model(videos)["probs"])
    assert loaded.weights_id == model.weights_id
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temporary file
    assert path.stat().st_mode & 0o777 == 0o644  # readable by everyone, like package data

    payload = torch.load(path, weights_only=True)

    def write(name: str, data: object) -> str:
        torch.save(data, tmp_path / name)
        return str(tmp_path / name)

    cases = {
        str(tmp_path / "missing.pt"): "shapes classifier file not found",
        write("other.pt", {"format": "ndevgan.c3d"}): "expected a dict with format",
        write("incomplete.pt", {k: v for k, v in payload.items() if k != "metadata"}): (
            "missing keys metadata"
        ),
        write(
            "shape.pt",
            {**payload, "state_dict": {**payload["state_dict"], "fc_shape.bias": torch.zeros(3)}},
        ): r"fc_shape.bias: got \(3,\), expected \(5,\)",
        write("config.pt", {**payload, "config": {**payload["config"], "depth": 3}}): (
            "expected keys input_size"
        ),
        write("version.pt", {**payload, "version": 2}): "version 2",
    }
    (tmp_path / "text.pt").write_text("not a torch file")
    cases[str(tmp_path / "text.pt")] = "not a readable torch file"
    cases[write("pickled.pt", {**payload, "metadata": {"when": np.float64(1.0)}})] = (
        "holds objects other than tensors and plain data"
    )
    for bad, message in cases.items():
        with pytest.raises(nd.ConfigError, match=message) as info:
            load_shapes_classifier(bad)
        assert str(info.value).startswith(bad) and "\n" not in str(info.value)

    with pytest.raises(nd.ConfigError, match=r"metadata.torch is a Tensor; expected plain data"):
        save_shapes_classifier(tmp_path / "bad.pt", model, {"torch": torch.zeros(1)})
    with pytest.raises(nd.ConfigError, match="expects a ShapesClassifier"):
        save_shapes_classifier(tmp_path / "bad.pt", torch.nn.Linear(1, 1), {})
    assert not (tmp_path / "bad.pt").exists()
