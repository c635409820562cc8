"""Tests of the evaluation pipeline (ndevgan_core.evaluation), the metric plugins
(ndevgan_plugins.c3d_metrics) and the ``ndevgan eval`` / ``ndevgan metrics`` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import torch
from torch import nn

import ndevgan_core as nd
from ndevgan_core import media
from ndevgan_core.evaluation import (
    FeatureStats,
    StatsCacheWarning,
    evaluate,
    load_video_classifier,
    read_stats,
    real_feature_stats,
    scored_samples,
)
from ndevgan_core.registry import Registry
from ndevgan_plugins import c3d
from ndevgan_plugins.c3d_metrics import load_classifier

from .conftest import fast_raw, ndevgan

DIM, SIZE, FRAMES = 8, 8, 4

# --------------------------------------------------------------------------------------------
# Small pieces: a generator, a classifier and a dataset that evaluate() can use in milliseconds


class RepeatTemporal(nd.TemporalGenerator):
    """Discrete: every frame's latent is z."""

    def __init__(self, spec: nd.TemporalSpec) -> None:
        super().__init__(spec, "temporal.repeat")

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.check_times(t)
        return z.unsqueeze(1).expand(-1, len(t), -1)


class WanderTemporal(nd.TemporalGenerator):
    """Stochastic: z plus a random walk driven by explicit noise."""

    stochastic = True

    def __init__(self, spec: nd.TemporalSpec) -> None:
        super().__init__(spec, "temporal.wander")

    def noise_shape(self, batch: int, t: torch.Tensor) -> tuple[int, ...]:
        return (batch, len(t), DIM)

    def forward(self, z, t, noise=None, generator=None):
        if noise is None:
            noise = torch.randn(self.noise_shape(z.shape[0], t), generator=generator)
        return z.unsqueeze(1) + 0.3 * noise.to(z).cumsum(1)


class LinearImage(nd.ImageGenerator):
    """Frames = tanh(A · latent) + shift, with A fixed by a seed."""

    def __init__(self, shift: float = 0.0) -> None:
        super().__init__()
        self.proj = nn.Linear(DIM, 3 * SIZE * SIZE)
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(self.proj.weight.shape, generator=g) * 0.5)
            self.proj.bias.zero_()
        self.shift = shift

    def forward(self, latents: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        b, t, _ = latents.shape
        frames = torch.tanh(self.proj(latents)) + self.shift
        return frames.reshape(b, t, 3, SIZE, SIZE)


def make_generator(shift: float = 0.0, stochastic: bool = False) -> nd.VideoGenerator:
    spec = nd.TemporalSpec((DIM,), (DIM,), FRAMES)
    temporal = WanderTemporal(spec) if stochastic else RepeatTemporal(spec)
    return nd.VideoGenerator(temporal, LinearImage(shift), (DIM,), "normal").eval()


class TinyClassifier(nd.VideoClassifier):
    """Features: per-channel mean and std (6); probs: softmax of a fixed linear map (5).
    Counts its calls and keeps every probability it returned."""

    def __init__(self, weights_id: str = "tiny-v1") -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.register_buffer("w", torch.randn(6, 5, generator=g))
        self.register_buffer("centre", torch.tensor([0.0, 0.0, 0.0, 0.7, 0.7, 0.7]))
        self.num_classes, self.feature_size, self.weights_id = 5, 6, weights_id
        self.calls = 0
        self.seen: list[torch.Tensor] = []

    def forward(self, videos: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        features = torch.cat([videos.mean(dim=(2, 3, 4)), videos.std(dim=(2, 3, 4))], dim=1)
        centred = (features - self.centre) / 0.07  # roughly standardised for make_generator()
        probs = (centred @ self.w).softmax(dim=1)
        self.seen.append(probs.detach().cpu())
        return {"features": features, "probs": probs}


@attrs.frozen
class ClipsConfig:
    """Options of the test dataset (part of the statistics cache key)."""

    seed: int = 10_000


class GeneratedClips(nd.VideoDataset):
    """Real clips drawn from the same distribution as ``make_generator(shift=0)``."""

    plugin_name = "dataset.test-clips"

    def __init__(self, length: int = 256, config: ClipsConfig = ClipsConfig()) -> None:
        self.config = config
        self.length = length
        self.spec = nd.VideoSpec(FRAMES, SIZE, SIZE)
        self.class_names = ()
        self.source = make_generator()

    def __len__(self) -> int:
        return self.length

    @torch.no_grad()
    def __getitem__(self, index: int) -> dict[str, Any]:
        z = self.source.sample_z(1, torch.Generator().manual_seed(self.config.seed + index))
        return {"video": self.source(z)[0], "label": 0}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(entry_points=False, disabled=())


def _run(registry: Registry, generator: nd.VideoGenerator | None = None, **kwargs: Any) -> Any:
    options = {"samples": 64, "batch_size": 16, "progress": False, "registry": registry}
    options.update(kwargs)
    return evaluate(generator or make_generator(), **options)


# --------------------------------------------------------------------------------------------
# evaluate(): IS, FID, reproducibility


def test_is_is_the_inception_score_of_the_classifier_probs(registry: Registry) -> None:
    net = TinyClassifier()
    result = _run(registry, classifier=net, loops=3)["is"]
    assert net.calls == 3 * 64 // 16
    per_loop = torch.cat(net.seen).numpy().reshape(3, 64, 5)
    expected = [c3d.inception_score(p)[0] for p in per_loop]
    assert result.values == pytest.approx(expected, rel=1e-12)
    assert (result.mean, result.std) == pytest.approx((np.mean(expected), np.std(expected)))
    assert result.protocol == "tganv2: 64 samples x 3 loops, one split each"
    assert 1.2 < result.mean < 5  # the probabilities really vary between videos

    net = TinyClassifier()
    options = {"metric.is": {"protocol": "stylegan-v", "splits": 5}}
    result = _run(registry, classifier=net, samples=50, options=options)["is"]
    probs = torch.cat(net.seen).double().numpy()
    np.random.RandomState(42).shuffle(probs)  # StyleGAN-V's video_inception_score.py
    expected = [c3d.inception_score(probs[i * 10 : (i + 1) * 10])[0] for i in range(5)]
    assert result.values == pytest.approx(expected, rel=1e-12)
    assert result.protocol == "stylegan-v: 50 samples x 1 loop, 5 splits each"


def test_seeded_reproducible_and_independent_of_batch_size(registry: Registry) -> None:
    for stochastic in (False, True):
        gen = make_generator(stochastic=stochastic)
        a = _run(registry, gen, classifier=TinyClassifier(), loops=2, seed=5)["is"]
        b = _run(registry, gen, classifier=TinyClassifier(), loops=2, seed=5, batch_size=7)["is"]
        c = _run(registry, gen, classifier=TinyClassifier(), loops=2, seed=6)["is"]
        assert a.values == pytest.approx(b.values, rel=1e-9)
        assert a.values[0] != a.values[1]  # a new seed per loop
        assert c.values[0] != pytest.approx(a.values[0], rel=1e-6)

        net = TinyClassifier()
        _run(registry, gen, classifier=net, seed=5, batch_size=4)
        shown = scored_samples(gen, 4, seed=5)  # what `ndevgan eval` draws beside its JSON
        torch.testing.assert_close(net(shown)["probs"], net.seen[0], rtol=1e-6, atol=1e-7)


def test_fid_is_near_zero_for_the_data_distribution_and_grows_with_a_shift(
    registry: Registry, tmp_path: Path
) -> None:
    data = GeneratedClips(256)
    common = {"metrics": ("fid",), "dataset": data, "samples": 256, "batch_size": 64}
    fids = {
        shift: _run(
            registry,
            make_generator(shift),
            classifier=TinyClassifier(),
            stats_cache=tmp_path,
            **common,
        )["fid"].mean
        for shift in (0.0, 0.1, 0.3)
    }
    assert abs(fids[0.0]) < 2e-3
    # the features are channel means (shifted by `shift`) and stds (unchanged)
    assert fids[0.1] == pytest.approx(3 * 0.1**2, rel=0.2)
    assert fids[0.3] == pytest.approx(3 * 0.3**2, rel=0.1)


def test_stats_cache_written_reused_keyed_and_corrupt_file_recomputed(
    registry: Registry, tmp_path: Path
) -> None:
    data = GeneratedClips(100)
    net = TinyClassifier()
    first, path = real_feature_stats(
        data, net, 40, batch_size=8, stats_cache=tmp_path, progress=False
    )
    assert net.calls == 5 and path.parent == tmp_path and path.exists()
    direct = FeatureStats.from_features(
        np.stack([net(data[i]["video"][None])["features"][0].numpy() for i in _indices(100, 40)])
    )
    np.testing.assert_allclose(first.mean, direct.mean, rtol=1e-6)
    np.testing.assert_allclose(first.cov, direct.cov, rtol=1e-5, atol=1e-9)
    assert read_stats(path).count == 40

    net.calls = 0
    again, path2 = real_feature_stats(data, net, 40, stats_cache=tmp_path, progress=False)
    assert net.calls == 0 and path2 == path
    np.testing.assert_array_equal(again.cov, first.cov)

    # keyed: other weights, another sample count and other dataset options → other files
    other_weights = real_feature_stats(
        data, TinyClassifier("tiny-v2"), 40, stats_cache=tmp_path, progress=False
    )[1]
    other_n = real_feature_stats(data, net, 30, stats_cache=tmp_path, progress=False)[1]
    other_data = GeneratedClips(100, ClipsConfig(seed=1))
    other_options = real_feature_stats(other_data, net, 40, stats_cache=tmp_path, progress=False)[1]
    assert len({path, other_weights, other_n, other_options}) == 4

    path.write_bytes(b"truncated")
    net.calls = 0
    with pytest.warns(StatsCacheWarning, match="recomputing"):
        redone, _ = real_feature_stats(
            data, net, 40, batch_size=8, stats_cache=tmp_path, progress=False
        )
    assert net.calls == 5
    np.testing.assert_array_equal(redone.cov, first.cov)
    assert read_stats(path).count == 40  # rewritten
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def _indices(length: int, n: int) -> list[int]:
    from ndevgan_core.evaluation import real_indices

    chosen = real_indices(length, n)
    assert len(set(chosen)) == n and chosen == real_indices(length, n)
    return chosen


def test_evaluate_refuses_what_it_cannot_do(registry: Registry) -> None:
    with pytest.raises(nd.ConfigError, match="metric.fid compares with real clips: pass a dataset"):
        _run(registry, metrics=("is", "fid"), classifier=TinyClassifier())
    with pytest.raises(nd.ConfigError, match="dataset.test-clips has no built-in classifier"):
        _run(registry, dataset=GeneratedClips(8))
    with pytest.raises(nd.ConfigError, match="protocol: expected one of"):
        _run(registry, classifier=TinyClassifier(), options={"metric.is": {"protocol": "x"}})
    with pytest.raises(nd.PluginError, match="unknown plugin 'metric.kid'"):
        _run(registry, metrics=("kid",), classifier=TinyClassifier())
    with pytest.raises(nd.ConfigError, match="samples"):
        _run(registry, classifier=TinyClassifier(), samples=1)


# --------------------------------------------------------------------------------------------
# Classifier files


class StyleGANVDetectorStandIn(nn.Module):
    """A stand-in for StyleGAN-V's TorchScript ``c3d_ucf101.pt`` (the real file cannot be
    downloaded here): uint8 videos (B, 3, T, H, W) in, probabilities out; ``return_features``
    (the keyword StyleGAN-V passes to its I3D detector) gives features instead."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 7)

    def forward(
        self,
        x: torch.Tensor,
        rescale: bool = False,
        resize: bool = False,
        return_features: bool = False,
        return_probs: bool = False,
    ) -> torch.Tensor:
        v = x.float() / 127.5 - 1.0
        f = torch.cat([v.mean(dim=(2, 3, 4)), v.std(dim=(2, 3, 4))], dim=1)
        if return_features:
            return f
        return torch.softmax(self.fc(f * 10.0), dim=1)


class ProbsOnlyStandIn(nn.Module):
    """The interface StyleGAN-V's video IS relies on: ``detector(uint8 videos)`` → probs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.float().mean(dim=(2, 3, 4))
        return torch.softmax(m, dim=1)


def script_detector(path: Path, module: nn.Module) -> Path:
    torch.manual_seed(0)
    torch.jit.script(module).save(str(path))
    return path


@pytest.fixture(scope="module")
def detector_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return script_detector(
        tmp_path_factory.mktemp("det") / "c3d_ucf101.pt", StyleGANVDetectorStandIn()
    )


def test_torchscript_detector_through_the_plugin_hook(
    registry: Registry, detector_file: Path
) -> None:
    net = load_video_classifier(detector_file, registry=registry)
    assert (net.num_classes, net.feature_size) == (7, 6)
    assert len(net.weights_id) == 16
    videos = torch.rand(3, 3, 16, 20, 24) * 2 - 1
    as_uint8 = (videos * 127.5 + 128).clamp(0, 255).to(torch.uint8)  # StyleGAN-V's conversion
    reference = torch.jit.load(str(detector_file))
    with torch.no_grad():
        out = net(videos)
        torch.testing.assert_close(out["probs"], reference(as_uint8), rtol=0, atol=0)
        torch.testing.assert_close(
            out["features"], reference(as_uint8, return_features=True), rtol=0, atol=0
        )
    result = _run(registry, classifier=detector_file, samples=16)["is"]
    assert 1.0 < result.mean < 7.0

    probs_only = load_video_classifier(
        script_detector(detector_file.with_name("probs.pt"), ProbsOnlyStandIn()), registry=registry
    )
    assert (probs_only.num_classes, probs_only.feature_size) == (3, 0)
    assert _run(registry, classifier=probs_only, samples=8)["is"].mean >= 1.0
    with pytest.raises(nd.ConfigError, match="metric.fid needs classifier features"):
        _run(registry, metrics=("fid",), dataset=GeneratedClips(8), classifier=probs_only)


def test_wrong_classifier_files_are_named_with_what_was_expected(
    registry: Registry, tmp_path: Path
) -> None:
    torch.save({"state_dict": {"fc8.weight": torch.zeros(2, 2)}}, tmp_path / "raw.pt")
    with pytest.raises(nd.ConfigError) as info:
        load_video_classifier(tmp_path / "raw.pt", registry=registry)
    message = str(info.value)
    assert "raw.pt" in message and "without a 'format' entry" in message
    assert "keys format, version, state_dict" in message and "mean (3, 16, 128, 171)" in message

    partial = {"format": "ndevgan.c3d", "version": 1, "mean": torch.zeros(c3d.MEAN_SHAPE)}
    partial["state_dict"] = {"fc8.weight": torch.zeros(101, 4096), "fc8.bias": torch.zeros(101)}
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(
        nd.ConfigError, match=r"partial\.pt.*missing keys.*conv1a/W \(64, 3, 3, 3, 3\)"
    ):
        load_classifier(tmp_path / "partial.pt")

    np.savez(tmp_path / "conv3d_deepnetA_ucf.npz", x=np.zeros(2))
    with pytest.raises(nd.ConfigError, match="convert it first: ndevgan metrics import-c3d"):
        load_video_classifier(tmp_path / "conv3d_deepnetA_ucf.npz", registry=registry)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(nd.ConfigError, match="no installed metric plugin reads this file"):
        load_video_classifier(tmp_path / "notes.txt", registry=registry)
    with pytest.raises(nd.ConfigError, match="not a classifier file this plugin reads"):
        load_classifier(tmp_path / "notes.txt")
    with pytest.raises(nd.ConfigError, match="not found"):
        load_video_classifier(tmp_path / "absent.pt", registry=registry)


def _c3d_state(random: tuple[str, ...] = ("conv1a", "fc7", "fc8")) -> dict[str, torch.Tensor]:
    """Full-size C3D weights: random biases, random weights in the layers named and zero
    weights elsewhere (cheap to make)."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in c3d.C3D_SHAPES.items():
        layer, kind = key.split("/")
        name = f"{layer}.{'weight' if kind == 'W' else 'bias'}"
        state[name] = (
            torch.randn(shape, generator=g) * 0.02
            if layer in random or kind == "b"
            else torch.zeros(shape)
        )
    return state


def test_converted_c3d_file_opens_as_c3d_with_dropout_compat(
    registry: Registry, tmp_path: Path
) -> None:
    state, mean = _c3d_state(), torch.rand(c3d.MEAN_SHAPE) * 100
    c3d.save_c3d(tmp_path / "c3d.pt", state, mean)
    assert not list(tmp_path.glob(".*.tmp"))
    net = load_video_classifier(tmp_path / "c3d.pt", registry=registry)
    assert (net.num_classes, net.feature_size, net.training) == (101, 4096, False)
    loaded = net.net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert torch.equal(net.mean, mean)
    # dropout sits in the fully connected head: off by default, on with dropout_compat
    pool5 = torch.rand(2, 512, 1, 4, 4)
    compat = load_video_classifier(
        tmp_path / "c3d.pt", registry=registry, options={"dropout_compat": True}
    )
    with torch.no_grad():
        assert torch.equal(net.net.head(pool5)["fc7"], net.net.head(pool5)["fc7"])
        a, b = compat.net.head(pool5), compat.net.head(pool5)
    assert not torch.equal(a["fc7"], b["fc7"]) and not torch.equal(a["probs"], b["probs"])


# --------------------------------------------------------------------------------------------
# ndevgan eval


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ndevgan_core.runconfig import resolve
    from ndevgan_core.training.trainer import Trainer

    registry = Registry(entry_points=False, disabled=())
    config = resolve(fast_raw(iterations=2), registry)
    run_dir = tmp_path_factory.mktemp("eval") / "run"
    Trainer(config, registry, run_dir=run_dir).save()  # the untrained generator, step 0
    return run_dir


def test_eval_command_writes_json_that_matches_the_library(
    tiny_run: Path, detector_file: Path, tmp_path: Path, registry: Registry
) -> None:
    out, cache = tmp_path / "res.json", tmp_path / "cache"
    args = ["eval", str(tiny_run), "--metric", "is", "--metric", "fid", "--c3d", str(detector_file)]
    args += ["--n", "8", "--loops", "2", "--batch-size", "4", "--seed", "3", "--device", "cpu"]
    proc = ndevgan(
        *args,
        "--out",
        str(out),
        "--stats-cache",
        str(cache),
        "--no-progress",
        env={"NDEVGAN_CACHE": str(tmp_path / "default-cache")},
    )
    record = json.loads(out.read_text())
    assert record["step"] == 0 and record["n"] == 8 and record["loops"] == 2
    assert record["checkpoint"] == str(tiny_run.resolve())
    assert record["dataset"]["name"] == "dataset.shapes"
    assert record["dataset"]["options"]["videos"] == 64
    assert record["classifier"]["path"] == str(detector_file.resolve())
    assert record["classifier"]["weights_id"] == load_classifier(detector_file).weights_id
    by_metric = {r["metric"]: r for r in record["results"]}
    assert set(by_metric) == {"is", "fid"}
    assert by_metric["is"]["protocol"] == "tganv2: 8 samples x 2 loops, one split each"
    assert len(list(cache.glob("dataset-shapes-*-n8-*.npz"))) == 1
    assert not (tmp_path / "default-cache").exists()
    assert "IS" in proc.stdout and "FID" in proc.stdout and str(out) in proc.stdout
    generator = nd.load_generator(tiny_run, registry).generator
    strip = media.frame_strip(media.to_uint8(scored_samples(generator, 8, seed=3)))
    np.testing.assert_array_equal(media.read_png(out.with_suffix(".png")), strip)

    from ndevgan_core.evaluation import load_dataset_of

    config = nd.load_generator(tiny_run, registry).config
    library = evaluate(
        generator,
        ("is", "fid"),
        dataset=load_dataset_of(config, registry)[0],
        classifier=detector_file,
        samples=8,
        loops=2,
        batch_size=4,
        seed=3,
        progress=False,
        registry=registry,
        stats_cache=cache,
    )
    for name, result in library.items():
        assert by_metric[name]["values"] == pytest.approx(list(result.values), rel=1e-9)

    # metric and classifier options reach their plugins through --set
    args = ["eval", str(tiny_run), "--metric", "is", "--c3d", str(detector_file), "--n", "8"]
    args += ["--set", "metric.is.protocol=stylegan-v", "--set", "metric.is.splits=2"]
    ndevgan(*args, "--out", str(out), "--no-progress", "--device", "cpu")
    record = json.loads(out.read_text())
    assert record["results"][0]["protocol"] == "stylegan-v: 8 samples x 1 loop, 2 splits each"
    assert len(record["results"][0]["values"]) == 2 and record["classifier_options"] == {}
    proc = ndevgan(*args, "--set", "classifier.dropuot=true", "--out", str(out), check=False)
    assert proc.returncode == 1 and "classifier options dropuot" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = ndevgan(*args, "--set", "run.seed=1", "--out", str(out), check=False)
    assert proc.returncode == 2 and "expected metric.NAME.KEY=VALUE" in proc.stderr


def test_result_lines_show_a_spread_only_when_there_is_one() -> None:
    from ndevgan_core.evaluation import MetricResult, result_line

    several = MetricResult(mean=2.5, std=0.25, values=(2.25, 2.75), protocol="p: 2 loops")
    single = MetricResult(mean=195.0954, std=0.0, values=(195.0954,), protocol="p: 1 loop")
    assert result_line("is", several, 3).split() == [
        "IS",
        "2.5000",
        "±",
        "0.2500",
        "p:",
        "2",
        "loops",
    ]
    assert result_line("fid", single, 3).split() == ["FID", "195.0954", "p:", "1", "loop"]
    assert len(result_line("is", several, 3)) == len(result_line("fid", single, 3)) + 1


# --------------------------------------------------------------------------------------------
# Distributed evaluation


def _distributed_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        runs = []
        for _ in range(2):  # the second reads the statistics cache rank 0 wrote
            results = evaluate(
                make_generator(stochastic=True),
                ("is", "fid"),
                dataset=GeneratedClips(64),
                classifier=TinyClassifier(),
                samples=40,
                loops=2,
                batch_size=6,
                progress=False,
                registry=Registry(entry_points=False, disabled=()),
                stats_cache=Path(out_dir) / "cache",
                distributed=True,
            )
            runs.append({k: v.to_dict() for k, v in results.items()})
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(runs))
    finally:
        torch.distributed.destroy_process_group()


def test_distributed_evaluation_matches_one_process(registry: Registry, tmp_path: Path) -> None:
    torch.multiprocessing.spawn(
        _distributed_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True
    )
    single = evaluate(
        make_generator(stochastic=True),
        ("is", "fid"),
        dataset=GeneratedClips(64),
        classifier=TinyClassifier(),
        samples=40,
        loops=2,
        batch_size=6,
        progress=False,
        registry=registry,
        stats_cache=tmp_path / "single-cache",
    )
    expected = {k: v.to_dict() for k, v in single.items()}
    for rank in (0, 1):
        runs = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert runs == [expected, expected]
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1


# --------------------------------------------------------------------------------------------
# Slow: the published C3D file layout end to end, and the shapes classifier on the demo


@pytest.mark.slow
def test_import_c3d_command_then_score_like_the_network(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        k: (rng.standard_normal(s, dtype=np.float32) * 0.02) for k, s in c3d.C3D_SHAPES.items()
    }
    np.savez(tmp_path / "conv3d_deepnetA_ucf.npz", **arrays)
    mean = (rng.random(c3d.MEAN_SHAPE, dtype=np.float32) * 255).astype(np.float32)
    np.savez(tmp_path / "mean2.npz", mean=mean)
    del arrays
    out = tmp_path / "c3d_ucf101.pt"
    proc = ndevgan(
        "metrics", "import-c3d", "--weights", str(tmp_path / "conv3d_deepnetA_ucf.npz"),
        "--mean", str(tmp_path / "mean2.npz"), "--out", str(out),
    )  # fmt: skip
    net = load_classifier(out)
    assert f"weights_id {net.weights_id}" in proc.stdout and "78,409,573 parameters" in proc.stdout

    state, mean_t = c3d.load_chainer_npz(
        tmp_path / "conv3d_deepnetA_ucf.npz", tmp_path / "mean2.npz"
    )
    with torch.device("meta"):
        reference = c3d.C3D()
    reference.load_state_dict(state, assign=True)
    video = torch.rand(2, 3, 16, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        expected = reference.eval()(c3d.preprocess(video, mean_t))
        got = net(video)
    torch.testing.assert_close(got["features"], expected["fc7"], rtol=0, atol=0)
    torch.testing.assert_close(got["probs"], expected["probs"], rtol=0, atol=0)

    bad = ndevgan(
        "metrics", "import-c3d", "--weights", str(tmp_path / "mean2.npz"),
        "--mean", str(tmp_path / "mean2.npz"), "--out", str(tmp_path / "x.pt"), check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and not (tmp_path / "x.pt").exists()
    assert "missing keys (expected shapes): conv1a/W (64, 3, 3, 3, 3)" in bad.stderr
    assert "Traceback" not in bad.stderr


def _shapes_registry_and_dataset() -> tuple[Registry, nd.VideoDataset]:
    from ndevgan_core.runconfig import assemble, demo_config, make_dataset, resolve

    registry = Registry(entry_points=False, disabled=())
    config = resolve(demo_config(), registry)
    with torch.device("meta"):
        backbone = assemble(config, registry).backbone
    return registry, make_dataset(config, registry, backbone)


@pytest.mark.slow
def test_shapes_classifier_scores_real_clips_above_noise() -> None:
    registry, dataset = _shapes_registry_and_dataset()
    net = load_video_classifier(dataset.reference_classifier(), registry=registry)
    real = torch.stack([dataset[i]["video"] for i in range(512)])
    noise = torch.rand(real.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        scores = {
            name: c3d.inception_score(torch.cat([net(v)["probs"] for v in videos.split(64)]))[0]
            for name, videos in (("real", real), ("noise", noise))
        }
    assert scores["real"] > 2 * scores["noise"], scores
    assert scores["real"] > 5, scores  # 25 classes, used about equally by the renderer


@pytest.mark.slow
def test_trained_demo_checkpoint_has_a_better_fid_than_its_initialisation(tmp_path: Path) -> None:
    from ndevgan_core.runconfig import demo_config, raw_config, resolve
    from ndevgan_core.training.trainer import Trainer

    registry = Registry(entry_points=False, disabled=())
    overrides = ["run.iterations=2000", "run.checkpoint_every=2000", "run.sample_every=2000"]
    config = resolve(
        raw_config(None, (), [*overrides, "run.progress=false"], demo_config()), registry
    )
    trainer = Trainer(config, registry, run_dir=tmp_path / "run")
    trainer.save()  # step 0: the untrained initialisation
    run_dir = trainer.fit()
    fids = {}
    for step in (0, 2000):
        out = tmp_path / f"step{step}.json"
        ckpt = run_dir / "checkpoints" / f"step-{step:08d}.pt"
        ndevgan(
            "eval", str(ckpt), "--out", str(out), "--no-progress",
            env={"NDEVGAN_CACHE": str(tmp_path / "cache")},
        )  # fmt: skip
        record = json.loads(out.read_text())
        assert record["n"] == 2048 and record["classifier"]["path"].endswith("shapes_c3d.pt")
        fids[step] = {r["metric"]: r for r in record["results"]}["fid"]["mean"]
    # with the demo's dark background start the sprite G's FID falls within 1,000 steps: about
    # 60 at its 2,000 steps (docs/TINY_RECIPE.md); from a random start about 150
    assert fids[2000] < 0.9 * fids[0], fids
    (cached,) = (tmp_path / "cache" / "fid-stats").glob("*.npz")  # one file: computed, reused
    env = {"NDEVGAN_CACHE": str(tmp_path / "cache")}
    found = ndevgan("metrics", "stats", str(run_dir), "--no-progress", env=env)
    assert found.stdout.strip().endswith(str(cached.name))  # same key: the cached file
    shown = ndevgan("metrics", "stats", str(cached)).stdout
    assert "dataset: dataset.shapes" in shown and "samples: 2048" in shown
