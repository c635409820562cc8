"""A small C3D-style classifier of ``dataset.shapes`` videos, for IS and FID without a download.

The published metrics score videos with C3D trained on UCF101; a moving-shapes video means
nothing to that network. :class:`ShapesClassifier` is the same idea at the scale of the
built-in dataset: four 3-D convolution blocks and a small fully connected head that tell the
25 shape × motion classes of :mod:`ndevgan_plugins.shapes_render` apart. Its 256-d
penultimate activations (after ReLU) are the FID features and its softmax over the 25 classes
the IS probabilities.

It scores the videos of every backbone: frames of any size are resized to 32×32 (area
averaging when shrinking, bilinear when enlarging) and any number of frames is resampled to
16 by linear interpolation over time, inside :meth:`ShapesClassifier.forward`.

``tools/train_shapes_c3d.py`` trains it from a seed; the package ships the result as
``ndevgan_plugins/weights/shapes_c3d.pt``, a torch file of plain data and tensors::

    {"format": "ndevgan.shapes-c3d", "version": 1, "config": {...architecture...},
     "state_dict": {...}, "class_names": [...], "metadata": {...how it was trained...}}

written by :func:`save_shapes_classifier` and read by :func:`load_shapes_classifier`.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import nn

import ndevgan_core as nd
from ndevgan_core import atomic_torch_save, non_negative, option, positive

from . import shapes_render

__all__ = [
    "FORMAT",
    "VERSION",
    "ShapesClassifier",
    "ShapesClassifierConfig",
    "load_shapes_classifier",
    "save_shapes_classifier",
]

FORMAT = "ndevgan.shapes-c3d"
"""The ``format`` header of a saved shapes classifier."""

VERSION = 1
"""The file format version :func:`load_shapes_classifier` reads."""

_REQUIRED_KEYS = ("format", "version", "config", "state_dict", "class_names", "metadata")


def _channel_widths(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """Validator: a non-empty tuple of positive integers."""
    if (
        not isinstance(value, tuple)
        or not value
        or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in value)
    ):
        raise nd.ConfigError(
            f"{attribute.name}: expected a non-empty tuple of positive integers, got {value!r}"
        )


def _as_tuple(value: Any) -> Any:
    """Lists (as a saved config holds them) become tuples; anything else is left for the
    validator to judge."""
    return tuple(value) if isinstance(value, list) else value


@attrs.frozen
class ShapesClassifierConfig:
    """Architecture of :class:`ShapesClassifier` (saved with the weights)."""

    input_size: int = option(32, "frame size the videos are resized to", positive)
    input_frames: int = option(16, "frames the videos are resampled to", positive)
    channels: tuple[int, ...] = attrs.field(
        default=(16, 32, 64, 96),
        converter=_as_tuple,
        validator=_channel_widths,
        metadata={"help": "output channels of the 3-D convolution blocks"},
    )
    spatial_blocks: int = option(
        3, "leading blocks with 1×3×3 kernels that pool space only", non_negative
    )
    feature_size: int = option(256, "width of the feature layer (the FID features)", positive)
    num_shapes: int = option(len(shapes_render.SHAPES), "shape classes", positive)
    num_motions: int = option(len(shapes_render.MOTIONS), "motion classes", positive)

    @property
    def num_classes(self) -> int:
        """Labels: ``shape * num_motions + motion``, as :mod:`shapes_render` numbers them."""
        return self.num_shapes * self.num_motions

    def __attrs_post_init__(self) -> None:
        """Check that the pools leave at least one voxel: every block halves the frame size,
        each block after the spatial ones halves the frames too."""
        blocks = len(self.channels)
        temporal = blocks - self.spatial_blocks
        if temporal < 0 or self.input_size < 2**blocks or self.input_frames < 2**temporal:
            raise nd.ConfigError(
                f"shapes classifier: {blocks} conv blocks, {self.spatial_blocks} of them "
                f"spatial, need spatial_blocks <= {blocks}, input_size >= {2**blocks} and "
                f"input_frames >= {2 ** max(temporal, 0)}; got {self.spatial_blocks}, "
                f"{self.input_size} and {self.input_frames}"
            )

    def pooled_frames(self) -> int:
        """Frames left after the last block (the head keeps them apart)."""
        return self.input_frames // 2 ** (len(self.channels) - self.spatial_blocks)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the saved file (tuples as lists)."""
        data = attrs.asdict(self)
        data["channels"] = list(self.channels)
        return data


def resize_videos(videos: torch.Tensor, size: int, frames: int) -> torch.Tensor:
    """Videos (B, C, T, H, W) → (B, C, frames, size, size).

    Each frame is area-averaged when it shrinks (so a 64-px clip gives the same 32-px frame
    that rendering at 32 px approximates) and bilinearly interpolated when it grows; the time
    axis is linearly interpolated with the first and last frames kept in place, matching the
    renderer's frame times ``k / (T - 1)``. A single frame is repeated.
    """
    b, c, t, h, w = videos.shape
    x = videos
    if (h, w) != (size, size):
        flat = x.transpose(1, 2).reshape(b * t, c, h, w)
        mode = "area" if h >= size and w >= size else "bilinear"
        if mode == "area":
            flat = F.interpolate(flat, size=(size, size), mode="area")
        else:
            flat = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False)
        x = flat.reshape(b, t, c, size, size).transpose(1, 2)
    if t != frames:
        series = x.permute(0, 1, 3, 4, 2).reshape(b, c * size * size, t)
        if t == 1:
            series = series.expand(-1, -1, frames)
        else:
            series = F.interpolate(series, size=frames, mode="linear", align_corners=True)
        x = series.reshape(b, c, size, size, frames).permute(0, 1, 4, 2, 3)
    return x.contiguous()


def state_dict_digest(state: Mapping[str, torch.Tensor]) -> str:
    """First 16 hex digits of a sha256 over the names, dtypes, shapes and bytes of ``state``
    (key order does not matter)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class ShapesClassifier(nd.VideoClassifier):
    """C3D in miniature for ``dataset.shapes``: blocks of [3-D conv, BatchNorm, ReLU, max-pool],
    a max over the positions left in each frame, then fc → BatchNorm → ReLU (the features) and
    two linear heads, one for the shape and one for the motion.

    The first ``spatial_blocks`` blocks (three of four by default) use 1×3×3 kernels and pool
    space only; the rest use 3×3×3 kernels and pool time and space by 2, as C3D does. Shapes
    move several pixels per frame, so a kernel spanning frames blends a shape with where it
    was: with 3×3×3 kernels from the first layer the network learned the motions within a
    few hundred steps but stayed at chance on the shapes, whereas frame-wise layers first see
    each shape whole and the later layers follow it over time. The max over positions makes
    the features independent of where the shape is; the frames that remain stay in order, so
    the head still sees how the shape moves.

    The logit of class ``shape * num_motions + motion`` is ``shape_logit + motion_logit``: the
    renderer draws shape and motion independently, so the softmax over the 25 classes is the
    product of a shape and a motion distribution, and the cross-entropy is the sum of a shape
    and a motion term, each with its own gradient.

    :meth:`forward` takes float videos (B, 3, T, H, W) in [-1, 1] of any T ≥ 1 and frame size
    and returns ``{"features": (B, feature_size), "probs": (B, num_classes), "logits": …}``.
    Call ``eval()`` before scoring: BatchNorm then uses its running statistics, dropout is
    off, and the output of each video does not depend on the rest of the batch.
    """

    def __init__(self, config: ShapesClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config or ShapesClassifierConfig()
        blocks: list[nn.Module] = []
        in_channels = 3
        for index, out_channels in enumerate(self.config.channels):
            spatial = index < self.config.spatial_blocks
            kernel, padding = ((1, 3, 3), (0, 1, 1)) if spatial else ((3, 3, 3), (1, 1, 1))
            pool = (1, 2, 2) if spatial else (2, 2, 2)
            blocks.append(
                nn.Sequential(
                    nn.Conv3d(in_channels, out_channels, kernel, padding=padding, bias=False),
                    nn.BatchNorm3d(out_channels),
                    nn.ReLU(inplace=True),
                    nn.MaxPool3d(pool, pool),
                )
            )
            in_channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        # BatchNorm before the ReLU keeps about half of the features active on every batch:
        # without it, the first steps on fresh clips can switch all of them off for good
        # (every logit constant, the loss stuck at log 25 — measured).
        self.fc_features = nn.Linear(
            in_channels * self.config.pooled_frames(), self.config.feature_size, bias=False
        )
        self.norm_features = nn.BatchNorm1d(self.config.feature_size)
        self.dropout = nn.Dropout(0.2)
        self.fc_shape = nn.Linear(self.config.feature_size, self.config.num_shapes)
        self.fc_motion = nn.Linear(self.config.feature_size, self.config.num_motions)

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        """Number of classes (25 for ``dataset.shapes``: shape × motion)."""
        return self.config.num_classes

    @property
    def feature_size(self) -> int:  # type: ignore[override]
        """Width of the FID features."""
        return self.config.feature_size

    @property
    def weights_id(self) -> str:  # type: ignore[override]
        """A digest of the current weights (:func:`state_dict_digest`)."""
        return state_dict_digest(self.state_dict())

    def prepare(self, videos: torch.Tensor) -> torch.Tensor:
        """Check and resize videos to the network's input (B, 3, input_frames, size, size)."""
        if videos.dim() != 5 or videos.shape[1] != 3 or min(videos.shape[2:]) < 1:
            raise nd.ConfigError(
                "shapes classifier: expected videos (B, 3, T, H, W) with T, H, W >= 1, got "
                f"shape {tuple(videos.shape)}"
            )
        if not videos.is_floating_point():
            raise nd.ConfigError(
                f"shapes classifier: expected float videos in [-1, 1], got {videos.dtype}"
            )
        return resize_videos(videos.float(), self.config.input_size, self.config.input_frames)

    def forward(self, videos: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"features", "probs", "logits"}`` of videos (B, 3, T, H, W) in [-1, 1]."""
        x = self.blocks(self.prepare(videos)).amax(dim=(3, 4))  # (B, C, frames left)
        features = F.relu(self.norm_features(self.fc_features(x.flatten(1))))
        hidden = self.dropout(features)
        shape, motion = self.fc_shape(hidden), self.fc_motion(hidden)
        logits = (shape[:, :, None] + motion[:, None, :]).flatten(1)
        return {"features": features, "probs": logits.softmax(dim=1), "logits": logits}


def _check_plain(value: Any, where: str) -> None:
    """Refuse anything ``torch.load(weights_only=True)`` could not read back: only str-keyed
    dicts, lists, tuples, str, int, float, bool and None are plain data here — exactly those
    types, not subclasses such as ``torch.__version__`` or numpy scalars, which pickle as
    their own classes."""
    if value is None or type(value) in (str, int, float, bool):
        return
    if type(value) in (list, tuple):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")
        return
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise nd.ConfigError(f"{where}: keys must be strings, got {key!r}")
            _check_plain(item, f"{where}.{key}")
        return
    raise nd.ConfigError(
        f"{where} is a {type(value).__name__}; expected plain data (str, int, float, bool, "
        "None, lists and dicts of them)"
    )


def save_shapes_classifier(
    path: str | Path, model: ShapesClassifier, metadata: Mapping[str, Any]
) -> Path:
    """Write ``model`` with its architecture, class names and ``metadata`` (how it was
    trained: seed, steps, accuracies, dataset settings, torch version) atomically to ``path``.

    Only plain data and tensors are stored, so :func:`load_shapes_classifier` reads the file
    with ``torch.load(weights_only=True)``.
    """
    if not isinstance(model, ShapesClassifier):
        raise nd.ConfigError(
            f"{path}: save_shapes_classifier expects a ShapesClassifier, got {type(model).__name__}"
        )
    if not isinstance(metadata, Mapping):
        raise nd.ConfigError(f"{path}: metadata must be a dict, got {type(metadata).__name__}")
    _check_plain(dict(metadata), f"{path}: metadata")
    num_classes = model.config.num_classes
    if num_classes == shapes_render.NUM_CLASSES:
        class_names = [shapes_render.class_name(i) for i in range(num_classes)]
    else:
        class_names = [f"class-{i}" for i in range(num_classes)]
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config.as_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "class_names": class_names,
        "metadata": dict(metadata),
    }
    written = atomic_torch_save(payload, path)
    written.chmod(0o644)  # the temporary file was private; this one is meant to be shipped
    return written


def _unpickler_reason(err: Exception) -> str:
    """The line of torch's long weights-only message that says what it refused."""
    for line in str(err).splitlines():
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].strip().split(". ")[0]
    return type(err).__name__


def read_shapes_classifier_file(path: str | Path) -> dict[str, Any]:
    """The checked contents of a file :func:`save_shapes_classifier` wrote (the header,
    ``config``, ``state_dict``, ``class_names`` and ``metadata``), read with
    ``weights_only=True``; :class:`~ndevgan_core.ConfigError` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise nd.ConfigError(f"{path}: shapes classifier file not found")
    if not zipfile.is_zipfile(path):
        raise nd.ConfigError(
            f"{path}: not a readable torch file (expected the zip archive torch.save writes, "
            f"holding a '{FORMAT}' dict)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise nd.ConfigError(
            f"{path}: holds objects other than tensors and plain data, which ndevgan does not "
            f"load; expected a '{FORMAT}' file ({_unpickler_reason(err)})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise nd.ConfigError(
            f"{path}: not a readable torch file; expected a '{FORMAT}' file ({first})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise nd.ConfigError(
            f"{path}: not a shapes classifier file (expected a dict with format '{FORMAT}')"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in payload]
    if missing:
        raise nd.ConfigError(
            f"{path}: incomplete shapes classifier file; missing keys {', '.join(missing)} "
            f"(expected {', '.join(_REQUIRED_KEYS)})"
        )
    if payload["version"] != VERSION:
        raise nd.ConfigError(
            f"{path}: shapes classifier format version {payload['version']!r}; this ndevgan "
            f"reads version {VERSION}"
        )
    for key, kind in (("config", dict), ("state_dict", dict), ("metadata", dict)):
        if not isinstance(payload[key], kind):
            raise nd.ConfigError(
                f"{path}: '{key}' should be a dict, got {type(payload[key]).__name__}"
            )
    return payload


def load_shapes_classifier(path: str | Path) -> ShapesClassifier:
    """Load a classifier :func:`save_shapes_classifier` wrote, in eval mode.

    Raises:
        ConfigError: the file is missing, not a ``ndevgan.shapes-c3d`` torch file, lacks a
            key, has an invalid architecture, or weights of other names or shapes than the
            architecture expects (all named in the message).
    """
    payload = read_shapes_classifier_file(path)
    config_data = payload["config"]
    try:
        config = ShapesClassifierConfig(**config_data)
    except TypeError as err:
        expected = ", ".join(f.name for f in attrs.fields(ShapesClassifierConfig))
        raise nd.ConfigError(
            f"{path}: bad 'config' {sorted(config_data)}; expected keys {expected} ({err})"
        ) from None
    except nd.ConfigError as err:
        raise nd.ConfigError(f"{path}: bad 'config': {err}") from None
    model = ShapesClassifier(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    state = payload["state_dict"]
    got = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    missing = [f"{k} {shape}" for k, shape in expected.items() if k not in got]
    wrong = [
        f"{k}: got {got[k]}, expected {shape}"
        for k, shape in expected.items()
        if k in got and got[k] != shape
    ]
    unexpected = [k for k in state if k not in expected]
    problems = []
    if missing:
        problems.append("missing weights (expected shapes): " + ", ".join(missing))
    if wrong:
        problems.append("wrong shapes: " + "; ".join(wrong))
    if unexpected:
        problems.append("unexpected keys: " + ", ".join(unexpected))
    if problems:
        raise nd.ConfigError(
            f"{path}: weights do not fit the saved architecture; " + "; ".join(problems)
        )
    model.load_state_dict(state)
    return model.eval()
