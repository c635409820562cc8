"""Running an exported generator in ONNX Runtime: the Python API and ``ndevgan infer``.

A file written by ``ndevgan export`` (:mod:`ndevgan_core.export.onnx`) carries its own description
in the model's metadata (key ``ndevgan``, JSON): the inputs a caller must feed (``z`` and, for
a stochastic generator, ``noise``) with their shapes, the frames and times baked into the
graph, the solver, and the plugins, config and checkpoint that made it. :func:`read_metadata`
parses it; :class:`OnnxVideoGenerator` opens a session, checks every input against it and
runs the graph::

    gen = OnnxVideoGenerator("gen.onnx")          # CUDA when it really loads, else the CPU
    print(gen.provider, gen.input_shapes(8))
    videos = gen.generate(16, seed=0)            # (16, T, C, H, W) float in [-1, 1]

Sessions never spin-wait (``allow_spinning = 0``), so they leave the cores to torch when both
run in one process. On CUDA, inputs and outputs go through IO binding: torch CUDA tensors are
bound in place and the output is a torch tensor on the same device.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import click
import numpy as np

from ndevgan_core.errors import ConfigError
from ndevgan_core.hookspecs import hookimpl
from ndevgan_core.options import OutputPath

METADATA_KEY = "ndevgan"
"""The key of the model's metadata entry (JSON) that ``ndevgan export`` writes."""

FORMAT = "ndevgan.onnx"
FORMAT_VERSION = 1
PROVIDERS = ("auto", "cuda", "cpu")
"""What ``provider`` may be: ``auto`` (CUDA when it loads, else the CPU), ``cuda``, ``cpu``."""

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"
_DTYPES = {"float32": np.float32, "float16": np.float16}


# --------------------------------------------------------------------------------------------
# Metadata


@attrs.frozen
class InputSpec:
    """One graph input: its per-sample shape (the full shape is ``(batch, *sample_shape)``),
    element type, and the distribution a caller draws it from (``uniform`` on [-1, 1] or
    standard ``normal``)."""

    name: str
    sample_shape: tuple[int, ...]
    dtype: str
    distribution: str
    description: str = ""

    def shape(self, batch: int) -> tuple[int, ...]:
        """The full shape for ``batch`` samples."""
        return (batch, *self.sample_shape)

    def describe(self) -> str:
        """``z (batch, 100) float32``."""
        dims = ", ".join(["batch", *map(str, self.sample_shape)])
        return f"{self.name} ({dims}) {self.dtype}"


@attrs.frozen
class OnnxMetadata:
    """What an exported file says about itself (see ``ndevgan export``).

    ``inputs`` holds ``z`` and, for stochastic generators, ``noise``; ``video_shape`` is the
    output's per-sample shape ``(T, C, H, W)``; ``times`` the frames' times; ``temporal`` the
    temporal generator's name, kind and solver; ``raw`` the whole parsed JSON (plugins, config,
    checkpoint hash, parity figures).
    """

    frames: int
    times: tuple[float, ...]
    inputs: dict[str, InputSpec]
    video_shape: tuple[int, ...]
    dtype: str
    temporal: dict[str, Any]
    plugins: dict[str, Any]
    raw: dict[str, Any]

    @property
    def stochastic(self) -> bool:
        """Whether the graph takes a ``noise`` input."""
        return "noise" in self.inputs

    def input_shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        """The shape of every input for ``batch`` samples."""
        return {name: spec.shape(batch) for name, spec in self.inputs.items()}

    def describe_inputs(self) -> str:
        """``z (batch, 100) float32, noise (batch, 41, 100) float32``."""
        return ", ".join(spec.describe() for spec in self.inputs.values())

    def summary(self) -> str:
        """One line for people: the plugins, frames, times and solver."""
        t = self.temporal
        solver = t.get("solver") or {}
        how = solver.get("method", "as trained") if t.get("continuous") else "discrete"
        plugins = " + ".join(str(v) for k, v in self.plugins.items() if k != "dataset")
        return (
            f"{plugins or t.get('plugin', '?')}: {self.frames} frames, t = {self.times[0]:g} … "
            f"{self.times[-1]:g}, {how}, video (batch, {', '.join(map(str, self.video_shape))})"
        )


def parse_metadata(text: str, where: str) -> OnnxMetadata:
    """Parse the JSON metadata of an exported file; ``where`` names the file in errors."""
    try:
        raw = json.loads(text)
        if raw.get("format") != FORMAT:
            raise ValueError(f"format is {raw.get('format')!r}")
        if raw.get("format_version") != FORMAT_VERSION:
            raise ConfigError(
                f"{where}: metadata format version {raw.get('format_version')}; this ndevgan "
                f"reads version {FORMAT_VERSION} (re-export it with this version)"
            )
        inputs = {
            name: InputSpec(
                name=name,
                sample_shape=tuple(int(d) for d in spec["shape"][1:]),
                dtype=str(spec["dtype"]),
                distribution=str(spec["distribution"]),
                description=str(spec.get("description", "")),
            )
            for name, spec in raw["inputs"].items()
        }
        video = raw["outputs"]["video"]
        return OnnxMetadata(
            frames=int(raw["frames"]),
            times=tuple(float(t) for t in raw["times"]),
            inputs=inputs,
            video_shape=tuple(int(d) for d in video["shape"][1:]),
            dtype=str(video["dtype"]),
            temporal=dict(raw["temporal"]),
            plugins=dict(raw.get("plugins") or {}),
            raw=raw,
        )
    except ConfigError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ConfigError(
            f"{where}: its '{METADATA_KEY}' metadata is not what ndevgan export writes ({exc})"
        ) from None


def _metadata_text(props: Mapping[str, str], where: str) -> str:
    if METADATA_KEY not in props:
        raise ConfigError(
            f"{where} has no '{METADATA_KEY}' metadata: it was not written by `ndevgan export` "
            "(the metadata says which inputs to feed)"
        )
    return props[METADATA_KEY]


def read_metadata(path: str | os.PathLike[str]) -> OnnxMetadata:
    """The metadata of an exported file, read without starting a session."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ConfigError(f"{path} is not a readable ONNX file: {exc}") from None
    props = {p.key: p.value for p in model.metadata_props}
    return parse_metadata(_metadata_text(props, str(path)), str(path))


# --------------------------------------------------------------------------------------------
# Sessions


@contextlib.contextmanager
def captured_native_stderr() -> Iterator[list[str]]:
    """Capture what native code (ONNX Runtime's loggers, torch's exporter) writes to file
    descriptor 2; the text is appended to the yielded list on exit.

    Used where those libraries print multi-line diagnostics for failures that ndevgan turns
    into one clear message (a CUDA provider that does not load, an unsupported operator).
    """
    captured: list[str] = []
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no usable descriptor 2: nothing to capture
        yield captured
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", errors="replace"))


def session_options(threads: int | None = None) -> Any:
    """ONNX Runtime session options: full graph optimisation, no spin-waiting; ``threads``
    intra-op threads (None: ONNX Runtime's default, one per physical core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads burn the cores torch (or another session) needs when they share them.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    return options


def _cuda_failure(log: str) -> str:
    """The gist of ONNX Runtime's log when the CUDA provider did not load."""
    for pattern in (r"Require .*?(?=\. Please|\n|$)", r"Failed to load library \S+"):
        found = re.search(pattern, log)
        if found:
            return found.group(0).rstrip(".")
    return "see ONNX Runtime's log"


def open_session(
    model: str | os.PathLike[str] | bytes,
    provider: str = "auto",
    threads: int | None = None,
    device_id: int = 0,
) -> tuple[Any, str, str | None]:
    """An ONNX Runtime session on ``provider``, the provider that really runs it, and why CUDA
    did not load when it was asked for and the CPU runs instead (else None).

    ``auto`` asks for CUDA when onnxruntime offers it and falls back to the CPU when it does not
    load; ``cuda`` raises a :class:`ConfigError` in that case. The provider is read back from
    ``session.get_providers()``, never assumed.
    """
    import onnxruntime as ort

    if provider not in PROVIDERS:
        raise ConfigError(f"provider: expected one of {', '.join(PROVIDERS)}, got {provider!r}")
    where = model if not isinstance(model, bytes) else "<in-memory model>"
    wants_cuda = provider == "cuda" or (
        provider == "auto" and _CUDA in ort.get_available_providers()
    )
    providers: list[Any] = [_CPU]
    if wants_cuda:
        providers = [(_CUDA, {"device_id": device_id}), _CPU]
    source = model if isinstance(model, bytes) else str(model)
    with captured_native_stderr() as log:
        try:
            session = ort.InferenceSession(source, session_options(threads), providers=providers)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"{where}: ONNX Runtime cannot load it: {reason}") from None
    actual = session.get_providers()[0]
    fallback = None
    if wants_cuda and actual != _CUDA:
        fallback = f"CUDAExecutionProvider did not load: {_cuda_failure(''.join(log))}"
        if provider == "cuda":
            raise ConfigError(f"provider cuda: {fallback}; use provider cpu or auto")
    return session, actual, fallback


def _is_torch(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "data_ptr")


class OnnxVideoGenerator:
    """A generator exported by ``ndevgan export``, run in ONNX Runtime.

    ``provider`` is ``auto`` (CUDA when it really loads, else the CPU), ``cuda`` or ``cpu``;
    :attr:`provider` is the one the session reports. :attr:`metadata` describes the inputs
    (:meth:`input_shapes`), frames and times. Calling it with ``z`` (and ``noise`` for a
    stochastic generator) returns videos ``(B, T, C, H, W)`` in [-1, 1]: numpy in, numpy out;
    torch tensors in, a torch tensor out (on CUDA it stays on the device). :attr:`fallback`
    says why CUDA did not load when ``auto`` fell back to the CPU (else None).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        provider: str = "auto",
        *,
        threads: int | None = None,
        device_id: int = 0,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"{self.path}: no such ONNX file")
        self.session, self.provider, self.fallback = open_session(
            self.path, provider, threads, device_id
        )
        self.device_id = device_id
        props = self.session.get_modelmeta().custom_metadata_map
        self.metadata = parse_metadata(_metadata_text(props, str(self.path)), str(self.path))
        graph_inputs = {i.name: i for i in self.session.get_inputs()}
        if set(graph_inputs) != set(self.metadata.inputs):
            raise ConfigError(
                f"{self.path}: the graph's inputs {sorted(graph_inputs)} do not match its "
                f"metadata's {sorted(self.metadata.inputs)}"
            )
        for name, spec in self.metadata.inputs.items():
            dims = list(graph_inputs[name].shape)[1:]
            fixed = [(d, m) for d, m in zip(dims, spec.sample_shape) if isinstance(d, int)]
            if len(dims) != len(spec.sample_shape) or any(d != m for d, m in fixed):
                raise ConfigError(
                    f"{self.path}: the graph's input {name} has shape {graph_inputs[name].shape}"
                    f" but its metadata says (batch, {', '.join(map(str, spec.sample_shape))})"
                )

    @property
    def on_cuda(self) -> bool:
        """Whether the session runs on the CUDA provider."""
        return self.provider == _CUDA

    def input_shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        """The shape every input must have for ``batch`` samples."""
        return self.metadata.input_shapes(batch)

    def _check(self, inputs: dict[str, Any]) -> int:
        """Validate the inputs against the metadata; returns the batch size."""
        meta = self.metadata
        expected = f"expected {meta.describe_inputs()} (from its metadata)"
        missing = [n for n in meta.inputs if inputs.get(n) is None]
        extra = [n for n, v in inputs.items() if v is not None and n not in meta.inputs]
        if missing or extra:
            what = [f"missing input {', '.join(missing)}"] if missing else []
            what += [f"unexpected input {', '.join(extra)}"] if extra else []
            raise ConfigError(f"{self.path}: {'; '.join(what)}; {expected}")
        batch = None
        for name, spec in meta.inputs.items():
            shape = tuple(inputs[name].shape)
            ok = len(shape) == len(spec.sample_shape) + 1 and shape[1:] == spec.sample_shape
            if not ok or shape[0] < 1 or (batch is not None and shape[0] != batch):
                raise ConfigError(
                    f"{self.path}: input {name} has shape {shape}; {expected}, with one batch "
                    "size for every input"
                )
            batch = shape[0]
        assert batch is not None
        return batch

    def __call__(self, z: Any, noise: Any = None) -> Any:
        """Run the graph: videos ``(B, T, C, H, W)`` in [-1, 1] (see the class docstring)."""
        inputs = {"z": self._as_array_like("z", z), "noise": self._as_array_like("noise", noise)}
        z = inputs["z"]
        batch = self._check(inputs)
        as_torch = _is_torch(z)
        if self.on_cuda:
            return self._run_bound(inputs, batch, as_torch)
        arrays = {name: self._array(value) for name, value in inputs.items() if value is not None}
        try:
            video = self.session.run(["video"], arrays)[0]
        except Exception as exc:  # onnxruntime's own error types, by binding
            if type(exc).__module__.startswith("onnxruntime"):
                raise ConfigError(
                    f"{self.path}: ONNX Runtime refused inputs shaped as its metadata says "
                    f"({str(exc).strip().splitlines()[0][:300]}); the file's metadata does not "
                    "match its graph — export it again"
                ) from None
            raise
        if as_torch:
            import torch

            return torch.from_numpy(video).to(z.device)
        return video

    def _as_array_like(self, name: str, value: Any) -> Any:
        """A torch tensor or numpy array of real numbers, all finite, or a ConfigError naming
        the input; lists and scalars become arrays, other float types (bf16) float32."""
        if value is None:
            return None
        if _is_torch(value):
            import torch

            if not (value.dtype.is_floating_point or value.dtype in (torch.int32, torch.int64)):
                raise ConfigError(f"input {name}: expected real numbers, got {value.dtype}")
            if value.dtype not in (torch.float16, torch.float32, torch.float64):
                value = value.float()  # numpy has no bfloat16
            if not bool(torch.isfinite(value).all()):
                raise ConfigError(f"input {name} holds NaN or infinite values")
            return value
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"input {name}: expected an array of numbers ({exc})") from None
        if array.dtype.kind not in "fiu":
            raise ConfigError(
                f"input {name}: expected an array of real numbers, got dtype {array.dtype} "
                f"({type(value).__name__})"
            )
        if not np.isfinite(array).all():
            raise ConfigError(f"input {name} holds NaN or infinite values")
        return array

    def _array(self, value: Any) -> np.ndarray:
        if _is_torch(value):
            value = value.detach().cpu().numpy()
        return np.ascontiguousarray(value, dtype=_DTYPES[self.metadata.dtype])

    def _run_bound(self, inputs: dict[str, Any], batch: int, as_torch: bool) -> Any:
        """Run on CUDA with IO binding, so inputs and outputs need no host round trip."""
        import onnxruntime as ort

        binding = self.session.io_binding()
        dtype = _DTYPES[self.metadata.dtype]
        keep = []  # device buffers must outlive the run
        for name, value in inputs.items():
            if value is None:
                continue
            if as_torch and _is_torch(value):
                import torch

                tensor = value.detach().to(
                    device=f"cuda:{self.device_id}", dtype=getattr(torch, self.metadata.dtype)
                )
                tensor = tensor.contiguous()
                keep.append(tensor)
                binding.bind_input(
                    name, "cuda", self.device_id, dtype, tuple(tensor.shape), tensor.data_ptr()
                )
            else:
                value = ort.OrtValue.ortvalue_from_numpy(self._array(value), "cuda", self.device_id)
                keep.append(value)
                binding.bind_ortvalue_input(name, value)
        shape = (batch, *self.metadata.video_shape)
        if as_torch:
            import torch

            # ONNX Runtime reads the bound buffers on its own stream: let torch finish them.
            torch.cuda.synchronize(self.device_id)

            out = torch.empty(
                shape,
                dtype=getattr(torch, self.metadata.dtype),
                device=f"cuda:{self.device_id}",
            )
            binding.bind_output("video", "cuda", self.device_id, dtype, shape, out.data_ptr())
            self.session.run_with_iobinding(binding)
            return out
        binding.bind_output("video", "cuda", self.device_id)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def sample_inputs(self, n: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Inputs for ``n`` videos drawn as ``ndevgan sample`` draws them: from one torch
        generator seeded with ``seed``, ``z`` first (uniform on [-1, 1] or standard normal, as
        the model was trained), then the standard-normal ``noise`` — so a seed gives the same
        videos here as from the checkpoint."""
        import torch

        rng = torch.Generator().manual_seed(seed)
        z_spec = self.metadata.inputs["z"]
        if z_spec.distribution == "uniform":
            z = torch.rand(z_spec.shape(n), generator=rng) * 2 - 1
        else:
            z = torch.randn(z_spec.shape(n), generator=rng)
        inputs = {"z": z.numpy()}
        if "noise" in self.metadata.inputs:
            shape = self.metadata.inputs["noise"].shape(n)
            inputs["noise"] = torch.randn(shape, generator=rng).numpy()
        return inputs

    def generate(self, n: int, seed: int = 0, batch_size: int = 16) -> np.ndarray:
        """``n`` videos ``(n, T, C, H, W)`` (numpy, float) from inputs drawn with ``seed``
        (:meth:`sample_inputs`), run ``batch_size`` at a time."""
        if n < 1 or batch_size < 1:
            raise ConfigError(f"generate: n and batch_size must be >= 1, got {n}, {batch_size}")
        inputs = self.sample_inputs(n, seed)
        chunks = []
        for i in range(0, n, batch_size):
            part = {name: value[i : i + batch_size] for name, value in inputs.items()}
            chunks.append(np.asarray(self(part["z"], part.get("noise"))))
        return np.concatenate(chunks)


# --------------------------------------------------------------------------------------------
# ndevgan infer


@click.command("infer")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--n", "n", default=16, show_default=True, type=click.IntRange(min=1), help="Number of videos."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of z (and noise).")
@click.option(
    "--out",
    default="videos.mp4",
    show_default=True,
    type=OutputPath(),
    help="Output grid video (.mp4 or .gif); a PNG strip is written beside it.",
)
@click.option(
    "--provider",
    default="auto",
    show_default=True,
    type=click.Choice(PROVIDERS),
    help="auto: CUDA when onnxruntime can load it, else the CPU.",
)
@click.option(
    "--fps",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Frames per second of the MP4 and GIF files.",
)
@click.option(
    "--batch-size", default=16, show_default=True, type=click.IntRange(min=1), help="Per run."
)
def infer_command(
    model: str, n: int, seed: int, out: str, provider: str, fps: int, batch_size: int
) -> None:
    """Generate videos from an exported ONNX file (ndevgan export) with ONNX Runtime.

    Reads the inputs to feed from the file's metadata, draws z (and noise) from --seed as
    `ndevgan sample` does, and writes the grid video and a PNG strip. Prints the execution
    provider that really ran.
    """
    from ndevgan_core import media
    from ndevgan_core.progress import progress_bar

    out_path = Path(out)
    if out_path.suffix.lower() not in media.VIDEO_SUFFIXES:
        raise click.BadParameter(
            f"expected a file ending in {' or '.join(media.VIDEO_SUFFIXES)}", param_hint="--out"
        )
    generator = OnnxVideoGenerator(model, provider)
    click.echo(f"{model}: {generator.metadata.summary()}")
    note = f" ({generator.fallback})" if generator.fallback else ""
    click.echo(f"provider: {generator.provider}{note}")
    inputs = generator.sample_inputs(n, seed)
    chunks = []
    with progress_bar(n, desc="infer", unit="video") as bar:
        for i in range(0, n, batch_size):
            part = {name: value[i : i + batch_size] for name, value in inputs.items()}
            chunks.append(np.asarray(generator(part["z"], part.get("noise"))))
            bar.update(len(part["z"]))
    videos = media.to_uint8(np.concatenate(chunks).transpose(0, 2, 1, 3, 4))
    media.write_video(out_path, media.video_grid(videos), fps=fps)
    strip = media.write_png(out_path.with_suffix(".png"), media.frame_strip(videos))
    click.echo(f"wrote {n} videos: {out_path}; strip: {strip}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``ndevgan infer``."""
    cli.add_command(infer_command)
