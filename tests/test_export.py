"""ONNX export and ONNX Runtime inference (ndevgan_core.export.onnx, ndevgan_core.export.runtime).

Checkpoints of the tiny presets are built in-process (random weights: parity does not need
training). The fast tests cover one ODE, one SDE and one discrete stochastic generator, the
exactness of unrolled rk4 against torchdiffeq, the runtime API, the CLI in subprocesses, the
standalone example, a third-party plugin and plugins that cannot export; the full backbone ×
temporal × solver matrix is marked slow.
"""

from __future__ import annotations

import copy
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import torch

import ndevgan_core as nd
from ndevgan_core import media
from ndevgan_core.errors import ConfigError
from ndevgan_core.export.onnx import (
    ExportError,
    export_onnx,
    exportable_generator,
    plan_export,
)
from ndevgan_core.export.runtime import OnnxVideoGenerator, open_session, read_metadata
from ndevgan_core.registry import Provider, Registry
from ndevgan_core.runconfig import assemble, resolve
from ndevgan_core.training.api import load_generator, sample_videos
from ndevgan_core.training.checkpoint import save_checkpoint

from .conftest import ROOT, ndevgan

SPIRAL_SRC = ROOT / "tests" / "plugins" / "ndevgan-spiral" / "src"


# --------------------------------------------------------------------------------------------
# Plugins that cannot export


class BesselTemporal(nd.ODETemporalGenerator):
    """A first-order ODE whose field uses an op with no ONNX equivalent (bessel_j0)."""

    def __init__(self, config: nd.ODESolverOptions, spec: nd.TemporalSpec) -> None:
        super().__init__(spec, "temporal.bessel")
        self.linear = torch.nn.Linear(spec.latent_shape[0], spec.latent_shape[0])
        self.solver = config

    def initial_state(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def drift(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return torch.special.bessel_j0(self.linear(state))


class NoisyTemporal(BesselTemporal):
    """A field that draws random numbers inside itself (an unseedable op in a graph)."""

    def drift(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return self.linear(state) + 0.01 * torch.randn_like(state)


@attrs.frozen
class BadFieldConfig(nd.ODESolverOptions):
    """Solver options only."""


class BadPlugins:
    """Registers the two plugins above."""

    @nd.hookimpl
    def register_components(self, register: Any) -> None:
        register("temporal.bessel", BesselTemporal, BadFieldConfig)
        register("temporal.noisy", lambda c, s: NoisyTemporal(c, s), BadFieldConfig)


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def registry() -> Registry:
    """Built-ins, the third-party spiral plugin (from its source tree) and the bad plugins."""
    reg = Registry(entry_points=False)
    sys.path.insert(0, str(SPIRAL_SRC))
    try:
        import ndevgan_spiral
    finally:
        sys.path.remove(str(SPIRAL_SRC))
    reg.add_plugin(ndevgan_spiral, Provider("spiral", "ndevgan-spiral", "0.1.0", builtin=False))
    reg.add_plugin(BadPlugins())
    return reg


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, registry):
    """``checkpoint(backbone, temporal, backbone_options, **temporal_options)`` → a checkpoint
    of that tiny generator (random weights, seeded), made once per module."""
    made: dict[Any, Path] = {}
    where = tmp_path_factory.mktemp("checkpoints")

    def make(backbone: str, temporal: str = "", backbone_options: Any = (), **options: Any) -> Path:
        backbone_options = dict(backbone_options)
        key = (backbone, temporal, tuple(sorted(options.items())), tuple(backbone_options.items()))
        if key not in made:
            short = backbone.split(".")[1]
            raw: dict[str, Any] = {
                "plugins": {"backbone": backbone, "temporal": temporal},
                "backbone": {short: {"preset": "tiny", **backbone_options}},
            }
            if temporal:
                raw["temporal"] = {temporal.split(".")[1]: dict(options)}
            config = resolve(raw, registry)
            torch.manual_seed(len(made))
            gan = assemble(config, registry).gan
            path = where / f"ckpt-{len(made)}.pt"
            save_checkpoint(
                path, {"step": 3, "config": config.to_dict(), "model": gan.state_dict()}
            )
            made[key] = path
        return made[key]

    return make


@pytest.fixture(scope="module")
def ode_export(tmp_path_factory, checkpoint, registry):
    """TGAN-ODE tiny exported with the defaults: (checkpoint, onnx path, report)."""
    ckpt = checkpoint("backbone.tgan", "temporal.ode")
    out = tmp_path_factory.mktemp("onnx") / "tgan-ode.onnx"
    return ckpt, out, export_onnx(ckpt, out, registry=registry)


# --------------------------------------------------------------------------------------------
# Fast tests


def test_ode_export_parity_metadata_and_runtime(ode_export, registry):
    ckpt, out, report = ode_export
    assert report.path == out and out.is_file()
    assert set(report.parity) == {1, 3} and report.max_error <= 1e-4
    # The training solver is torchdiffeq's rk4 on the frame grid: the same arithmetic.
    assert report.training_error is not None and report.training_error <= 1e-6
    assert "torchdiffeq rk4" in report.training_reference

    meta = read_metadata(out)
    assert meta.frames == 16 and meta.video_shape == (16, 3, 32, 32)
    assert meta.times == tuple(torch.linspace(0, 1, 16).tolist())
    assert meta.input_shapes(5) == {"z": (5, 100)}
    assert meta.temporal["solver"]["backend"] == "unrolled"
    assert meta.temporal["solver"]["method"] == "rk4"
    assert meta.plugins["backbone"] == "backbone.tgan"
    assert meta.plugins["temporal"] == "temporal.ode"
    assert meta.raw["config"]["backbone"]["tgan"]["preset"] == "tiny"
    assert meta.raw["checkpoint"]["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert meta.raw["checkpoint"]["step"] == 3

    gen = OnnxVideoGenerator(out, "cpu")
    assert gen.provider == "CPUExecutionProvider"
    assert gen.metadata == meta
    # generate() draws as `ndevgan sample` does: the same seed gives the same videos.
    loaded = load_generator(ckpt, registry)
    expected = sample_videos(loaded.generator, 4, seed=7).transpose(1, 2).numpy()
    np.testing.assert_allclose(gen.generate(4, seed=7, batch_size=3), expected, atol=1e-4)
    # torch in, torch out
    z = loaded.generator.sample_z(2)
    video = gen(z)
    assert isinstance(video, torch.Tensor) and video.shape == (2, 16, 3, 32, 32)

    with pytest.raises(
        ConfigError, match=r"input z has shape \(2, 99\); expected z \(batch, 100\)"
    ):
        gen(np.zeros((2, 99), np.float32))
    with pytest.raises(ConfigError, match=r"unexpected input noise; expected z \(batch, 100\)"):
        gen(np.zeros((2, 100), np.float32), noise=np.zeros((2, 4, 100), np.float32))
    # The loaded model is never modified: its solver is still the training one.
    assert loaded.generator.temporal.solver.backend == "torchdiffeq"


@pytest.mark.parametrize(
    ("colour", "size", "supersample", "shape", "code"),
    [
        ("free", "half", 1, "drawn", 0),
        ("flat", "half", 1, "drawn", 0),
        ("free", "full", 1, "drawn", 0),
        ("free", "full", 2, "drawn", 0),
        ("free", "full", 1, "polar", 0),
        ("free", "half", 1, "drawn", 5),  # the shape code's interval and one-hot in the graph
        ("free", "full", 1, "polar", 5),
    ],
)
def test_sprite_image_generator_exports_with_its_warp(
    colour, size, supersample, shape, code, checkpoint, registry, tmp_path
):
    options = {
        "image_generator": "sprite",
        "sprite_colour": colour,
        "sprite_size": size,
        "sprite_supersample": supersample,
        "sprite_shape": shape,
        "shape_code": code,
    }
    ckpt = checkpoint("backbone.tgan", "temporal.ode", backbone_options=options)
    report = export_onnx(ckpt, tmp_path / "g.onnx", registry=registry)
    assert report.max_error <= 1e-4
    gen = OnnxVideoGenerator(tmp_path / "g.onnx", "cpu")
    expected = sample_videos(load_generator(ckpt, registry).generator, 3, seed=2)
    np.testing.assert_allclose(gen.generate(3, seed=2), expected.transpose(1, 2).numpy(), atol=1e-4)


def test_unrolled_rk4_equals_torchdiffeq_rk4_exactly(checkpoint, registry, tmp_path):
    # 17 frames on [0, 1]: frame spacing 1/16, two steps per frame: h = 1/32, a power of two.
    generator = load_generator(checkpoint("backbone.tgan", "temporal.ode"), registry).generator
    trained = copy.deepcopy(generator)
    trained.temporal.solver = attrs.evolve(trained.temporal.solver, step_size=1 / 32)
    plan = plan_export(generator, frames=17, steps_per_frame=2, solver="rk4")
    assert plan.solver.step_size == 1 / 32
    module, _ = exportable_generator(generator, plan)
    z = generator.sample_z(3, torch.Generator().manual_seed(0))
    with torch.no_grad():
        exported = module(z)  # the traced module, run in PyTorch
        reference = trained(z, torch.linspace(0, 1, 17)).transpose(1, 2)
    assert torch.equal(exported, reference)  # bit for bit

    # Through ONNX Runtime, the same generator with the step in its training solver.
    report = export_onnx(trained, tmp_path / "rk4.onnx", frames=17)
    assert report.metadata.temporal["solver"]["step_size"] == 1 / 32
    assert "torchdiffeq rk4, step 0.03125" in report.training_reference
    assert report.training_error <= 1e-6


def test_sde_export_matches_torchsde_euler_given_the_same_increments(
    checkpoint, registry, tmp_path
):
    ckpt = checkpoint("backbone.tgan", "temporal.sde")
    report = export_onnx(ckpt, tmp_path / "sde.onnx", registry=registry)
    meta = report.metadata
    # The paper's grid with dt 2.5e-2: 41 solver steps, not one per frame.
    assert meta.input_shapes(2) == {"z": (2, 100), "noise": (2, 41, 100)}
    assert meta.temporal["solver"]["method"] == "euler-maruyama"
    assert report.training_reference == "torchsde euler, dt 0.025"
    assert report.training_error <= 1e-5

    loaded = load_generator(ckpt, registry).generator
    rng = torch.Generator().manual_seed(5)
    z, noise = loaded.sample_z(3, rng), torch.randn(3, 41, 100, generator=rng)
    with torch.no_grad():
        expected = loaded(z, noise=noise).transpose(1, 2).numpy()  # torchsde's euler
    gen = OnnxVideoGenerator(tmp_path / "sde.onnx", "cpu")
    np.testing.assert_allclose(gen(z.numpy(), noise.numpy()), expected, atol=1e-5)
    with pytest.raises(ConfigError, match=r"missing input noise; expected z \(batch, 100\) "):
        gen(z.numpy())
    with pytest.raises(ConfigError, match=r"noise \(batch, 41, 100\) float32"):
        gen(z.numpy(), noise.numpy()[:, :40])


def test_discrete_gru_exports_with_its_noise_as_an_input(checkpoint, registry, tmp_path):
    ckpt = checkpoint("backbone.mocogan")
    report = export_onnx(ckpt, tmp_path / "gru.onnx", registry=registry)
    meta = report.metadata
    assert meta.plugins["temporal"] == "temporal.gru" and meta.temporal["kind"] == "discrete"
    assert meta.input_shapes(1) == {"z": (1, 66), "noise": (1, 16, 16)}
    assert meta.inputs["z"].distribution == "normal"
    assert report.max_error <= 1e-4 and report.training_error is None

    loaded = load_generator(ckpt, registry).generator
    gen = OnnxVideoGenerator(tmp_path / "gru.onnx", "cpu")
    expected = sample_videos(loaded, 3, seed=2).transpose(1, 2).numpy()
    np.testing.assert_allclose(gen.generate(3, seed=2), expected, atol=1e-4)

    with pytest.raises(ConfigError, match="temporal.gru is a discrete temporal generator"):
        export_onnx(ckpt, tmp_path / "x.onnx", frames=8, registry=registry)
    with pytest.raises(ConfigError, match="temporal.gru is a discrete temporal generator; it"):
        export_onnx(ckpt, tmp_path / "x.onnx", solver="rk4", registry=registry)
    with pytest.raises(ConfigError, match="expected one of euler-maruyama, milstein"):
        export_onnx(checkpoint("backbone.tgan", "temporal.sde"), tmp_path / "x.onnx", solver="rk4")
    assert not (tmp_path / "x.onnx").exists()


def test_export_and_infer_commands(checkpoint, tmp_path):
    ckpt = checkpoint("backbone.tgan", "temporal.ode")
    out = tmp_path / "mid.onnx"
    args = ["--frames", "9", "--t-end", "2", "--solver", "midpoint", "--steps-per-frame", "2"]
    proc = ndevgan("export", str(ckpt), "--out", str(out), *args)
    assert "unrolled midpoint, step 0.125, 2 steps per frame" in proc.stdout
    assert "vs PyTorch, same solver: max abs error" in proc.stdout
    meta = read_metadata(out)
    assert meta.frames == 9 and meta.times[-1] == 2.0 and meta.temporal["steps_per_frame"] == 2

    video = tmp_path / "v.mp4"
    proc = ndevgan("infer", str(out), "--n", "3", "--out", str(video), "--provider", "cpu")
    assert "provider: CPUExecutionProvider" in proc.stdout
    assert "9 frames, t = 0 … 2" in proc.stdout
    assert media.read_video(video).shape[0] == 9
    assert media.read_png(video.with_suffix(".png")).shape[0] == 3 * 34 + 2  # a row per video

    bad = ndevgan(
        "export", str(ckpt), "--out", str(tmp_path / "b.onnx"), "--solver", "milstein", check=False
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "Error: solver: temporal.ode is an ODE; expected one of euler, midpoint, rk4, "
        "rk4-classic, got 'milstein'"
    ]


def test_cuda_is_used_only_when_it_loads(ode_export):
    _, out, _ = ode_export
    try:
        _, provider, _ = open_session(out, "cuda")
    except ConfigError as exc:
        assert str(exc).startswith("provider cuda: CUDAExecutionProvider did not load")
    else:
        assert provider == "CUDAExecutionProvider"
    _, provider, fallback = open_session(out, "auto")
    assert (provider == "CUDAExecutionProvider") == (fallback is None)


def test_standalone_example_needs_neither_torch_nor_ndevgan(ode_export, tmp_path):
    _, model, _ = ode_export
    video = tmp_path / "example.mp4"
    script = ROOT / "examples" / "onnx_inference.py"
    # Run the example as __main__, then check what it imported.
    code = (
        "import runpy, sys\n"
        f"sys.argv = [{str(script)!r}, {str(model)!r}, '--n', '2', '--out', {str(video)!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(script)!r}, run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "assert 'torch' not in sys.modules and 'ndevgan_core' not in sys.modules\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "video (2, 16, 3, 32, 32)" in proc.stdout
    frames = media.read_video(video)
    assert frames.shape[0] == 16 and frames.std() > 0


def test_third_party_plugin_exports(checkpoint, registry, tmp_path):
    ckpt = checkpoint("backbone.tgan", "temporal.spiral")
    report = export_onnx(ckpt, tmp_path / "spiral.onnx", registry=registry, solver="rk4-classic")
    assert report.max_error <= 1e-4
    meta = report.metadata
    assert meta.plugins["temporal"] == "temporal.spiral"
    assert meta.raw["plugin_packages"]["temporal.spiral"] == "ndevgan-spiral 0.1.0"
    assert meta.temporal["solver"]["method"] == "rk4-classic"


def test_unexportable_plugins_are_named_with_the_op(checkpoint, registry, tmp_path):
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportError) as bessel:
        export_onnx(checkpoint("backbone.tgan", "temporal.bessel"), out, registry=registry)
    assert str(bessel.value).startswith("temporal.bessel: cannot export to ONNX: its vector field")
    assert "aten::special_bessel_j0" in str(bessel.value)
    with pytest.raises(ExportError) as noisy:
        export_onnx(checkpoint("backbone.tgan", "temporal.noisy"), out, registry=registry)
    assert str(noisy.value).startswith("temporal.noisy: cannot export to ONNX: its vector field")
    assert "RandomNormalLike" in str(noisy.value)
    assert not out.exists() and list(tmp_path.iterdir()) == []

    # On the command line: one line naming the plugin and the op, no traceback.
    ckpt = checkpoint("backbone.tgan", "temporal.bessel")
    proc = subprocess.run(
        [sys.executable, "-c", _CLI_WITH_BAD_PLUGINS, "export", str(ckpt), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "Error: temporal.bessel: cannot export to ONNX" in proc.stderr
    assert "Traceback" not in proc.stderr and "Torch IR graph" not in proc.stderr


_CLI_WITH_BAD_PLUGINS = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from ndevgan_core import cli
from tests.test_export import BadPlugins
cli._registry().add_plugin(BadPlugins())
cli.main(sys.argv[1:])
"""


# --------------------------------------------------------------------------------------------
# The full matrix (slow)

BACKBONES = ("backbone.tgan", "backbone.mocogan", "backbone.tganv2")
TEMPORALS = [
    ("", {}, (None,)),
    ("temporal.ode", {"order": 1}, ("euler", "midpoint", "rk4", "rk4-classic")),
    ("temporal.ode", {"order": 2}, ("euler", "midpoint", "rk4", "rk4-classic")),
    ("temporal.ode", {"order": 3, "form": "chain"}, ("rk4",)),
    ("temporal.sde", {}, ("euler-maruyama", "milstein")),
]
MATRIX = [
    pytest.param(
        b,
        t,
        o,
        s,
        id=f"{b.split('.')[1]}-{t.split('.')[-1] or 'original'}{o.get('order', '')}-{s or 'as-is'}",
    )
    for b in BACKBONES
    for t, o, solvers in TEMPORALS
    for s in solvers
]


@pytest.mark.slow
@pytest.mark.parametrize(("backbone", "temporal", "options", "solver"), MATRIX)
def test_every_backbone_temporal_and_solver_exports(
    backbone, temporal, options, solver, checkpoint, registry, tmp_path
):
    ckpt = checkpoint(backbone, temporal, **options)
    steps = 2 if solver in ("euler", "midpoint") else None
    report = export_onnx(
        ckpt, tmp_path / "g.onnx", solver=solver, steps_per_frame=steps, registry=registry
    )
    assert report.max_error <= 1e-4
    gen = OnnxVideoGenerator(tmp_path / "g.onnx", "cpu")
    loaded = load_generator(ckpt, registry).generator
    video = gen.generate(2, seed=1)
    assert video.shape == (2, gen.metadata.frames, *gen.metadata.video_shape[1:])
    assert np.isfinite(video).all()
    if solver is None:
        assert report.training_error is None  # discrete: the graph is the generator itself
        return
    assert loaded.temporal.solver.backend != "unrolled"  # loading the checkpoint again
    if solver in ("rk4", "euler-maruyama"):
        # the training solvers (torchdiffeq rk4, torchsde euler) take the same steps
        assert report.training_error <= 1e-5
    else:
        assert np.isfinite(report.training_error)


@pytest.mark.slow
def test_fp16_export(checkpoint, registry, tmp_path):
    ckpt = checkpoint("backbone.tgan", "temporal.ode")
    report = export_onnx(ckpt, tmp_path / "h.onnx", fp16=True, registry=registry)
    assert report.metadata.dtype == "float16" and report.metadata.inputs["z"].dtype == "float16"
    assert report.max_error <= 2e-2 and report.training_error <= 2e-2
    video = OnnxVideoGenerator(tmp_path / "h.onnx", "cpu").generate(2, seed=0)
    assert video.dtype == np.float16


@pytest.mark.slow
def test_dynamo_exporter_gives_the_same_graph_numbers(ode_export, checkpoint, registry, tmp_path):
    _, torchscript, _ = ode_export
    report = export_onnx(
        checkpoint("backbone.tgan", "temporal.ode"),
        tmp_path / "d.onnx",
        exporter="dynamo",
        registry=registry,
    )
    assert report.max_error <= 1e-4
    inputs = OnnxVideoGenerator(torchscript, "cpu").sample_inputs(3, seed=4)
    a = OnnxVideoGenerator(torchscript, "cpu")(inputs["z"])
    b = OnnxVideoGenerator(tmp_path / "d.onnx", "cpu")(inputs["z"])
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize(
    ("z", "message"),
    [
        ([[0.0] * 99], "input z has shape (1, 99)"),
        (0.5, "input z has shape ()"),
        (np.array([[None] * 100], dtype=object), "expected an array of real numbers, got dtype"),
        (np.full((1, 100), np.nan, dtype=np.float32), "input z holds NaN or infinite values"),
        (np.array([["a"] * 100]), "expected an array of real numbers, got dtype <U1"),
    ],
)
def test_onnx_api_names_the_bad_input_instead_of_a_numpy_error(ode_export, z, message):
    gen = OnnxVideoGenerator(ode_export[1], "cpu")
    with pytest.raises(ConfigError) as err:
        gen(z)
    assert message in str(err.value)


def test_onnx_api_takes_lists_and_bfloat16_like_float32(ode_export):
    gen = OnnxVideoGenerator(ode_export[1], "cpu")
    z = torch.rand(2, 100) * 2 - 1
    expected = gen(z.numpy())
    np.testing.assert_allclose(gen(z.tolist()), expected, atol=1e-6)
    as_bf16 = gen(z.to(torch.bfloat16))
    np.testing.assert_allclose(
        as_bf16.numpy(), gen(z.to(torch.bfloat16).float().numpy()), atol=1e-6
    )


def test_onnx_file_whose_metadata_disagrees_with_its_graph_is_one_error(ode_export, tmp_path):
    import json

    import onnx

    from ndevgan_core.export.runtime import METADATA_KEY

    model = onnx.load(str(ode_export[1]))
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            meta = json.loads(prop.value)
            meta["inputs"]["z"]["shape"] = ["batch", 50]
            prop.value = json.dumps(meta)
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(ConfigError, match=r"input z has shape \['batch', 100\] but its metadata"):
        OnnxVideoGenerator(bad, "cpu")
    proc = ndevgan("infer", str(bad), "--out", str(tmp_path / "v.mp4"), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "but its metadata says (batch, 50)" in proc.stderr
