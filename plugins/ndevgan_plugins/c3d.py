"""C3D and the UCF101 Inception Score / FID protocol (docs/FIDELITY.md, "Scoring").

Everything the video IS/FID metrics need, without registering any plugin yet:

* :class:`C3D`: the published UCF101 C3D network (Tran et al.) in PyTorch, with module names
  that match the Chainer npz keys of TGANv2's ``conv3d_deepnetA_ucf.npz``.
* :func:`preprocess`: generated videos in [-1, 1] → the C3D input clip (B, 3, 16, 112, 112).
* :func:`load_chainer_npz` reads the Chainer weights and ``mean2.npz`` with numpy only;
  :func:`save_c3d` / :func:`load_c3d` keep a converted copy as a plain torch file.
* :func:`inception_score` and :func:`frechet_distance`, the maths of IS and FID in float64
  with numpy only (scipy is a test dependency, never needed at runtime); the protocols that
  use them (TGANv2's and StyleGAN-V's) are the ``metric.is`` / ``metric.fid`` plugins.

Typical use::

    state, mean = load_chainer_npz("conv3d_deepnetA_ucf.npz", "mean2.npz")
    net = C3D().eval()
    net.load_state_dict(state)
    out = net(preprocess(fake_videos, mean))   # dict: pool5, fc7, logits, probs
    score, _ = inception_score(out["probs"])
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ndevgan_core import ConfigError, atomic_torch_save

__all__ = [
    "C3D",
    "C3D_SHAPES",
    "MEAN_SHAPE",
    "c3d_preprocessing",
    "frechet_distance",
    "inception_score",
    "load_c3d",
    "load_chainer_npz",
    "preprocess",
    "preprocess_tganv2",
    "read_c3d",
    "save_c3d",
]

# (name, in_channels, out_channels) of the eight 3×3×3 convolutions, in order.
_CONVS: tuple[tuple[str, int, int], ...] = (
    ("conv1a", 3, 64),
    ("conv2a", 64, 128),
    ("conv3a", 128, 256),
    ("conv3b", 256, 256),
    ("conv4a", 256, 512),
    ("conv4b", 512, 512),
    ("conv5a", 512, 512),
    ("conv5b", 512, 512),
)
# (name, in_features, out_features) of the three linear layers.
_FCS: tuple[tuple[str, int, int], ...] = (
    ("fc6", 8192, 4096),
    ("fc7", 4096, 4096),
    ("fc8", 4096, 101),
)


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for name, cin, cout in _CONVS:
        shapes[f"{name}/W"] = (cout, cin, 3, 3, 3)
        shapes[f"{name}/b"] = (cout,)
    for name, fin, fout in _FCS:
        shapes[f"{name}/W"] = (fout, fin)
        shapes[f"{name}/b"] = (fout,)
    return shapes


#: Chainer npz key → array shape of the published UCF101 C3D (``conv3d_deepnetA_ucf.npz``).
C3D_SHAPES: dict[str, tuple[int, ...]] = _expected_shapes()
#: Shape of ``mean2.npz['mean']``: a BGR mean clip, 3 × 16 frames × 128 × 171.
MEAN_SHAPE: tuple[int, int, int, int] = (3, 16, 128, 171)
_MEAN_CROPPED: tuple[int, int, int, int] = (3, 16, 128, 128)
_FORMAT = "ndevgan.c3d"


class C3D(nn.Module):
    """The UCF101 C3D classifier used for video IS and FID.

    Layers: conv1a 64, pool1 (1,2,2); conv2a 128, pool2 2×2×2; conv3a/conv3b 256, pool3;
    conv4a/conv4b 512, pool4; conv5a/conv5b 512, pool5 (all pools 2×2×2 but pool1); every
    convolution is 3×3×3 with padding 1 and followed by ReLU; fc6 8192→4096 + ReLU + dropout
    0.5; fc7 4096→4096 + ReLU + dropout 0.5; fc8 4096→101. Max pooling uses ``ceil_mode`` to
    reproduce Chainer's ``cover_all``: at a 16×112×112 input pool4 gives 2×7×7 and pool5
    1×4×4 (512·16 = 8192 features for fc6).

    :meth:`forward` returns a dict with ``pool5`` (B, 512, 1, 4, 4), ``fc7`` (B, 4096),
    ``logits`` (B, 101) and ``probs`` (softmax of the logits). ``fc7`` is the FID feature:
    fc7 after its ReLU and before its dropout (the activations a Chainer ``fc7`` + ReLU
    extraction gives; our choice where the original code is ambiguous).

    Dropout follows ``self.training`` as usual, so an ``eval()`` network scores without it.
    ``dropout_compat=True`` keeps both dropouts active even in eval mode (and ``fc7`` is then
    taken after dropout 7, as the paper's FID code read it), reproducing the bug
    of the TGAN/paper scoring code (docs/FIDELITY.md) for comparison with published numbers;
    with it, ``fc7`` is perturbed by dropout 6 and ``logits`` by both dropouts.

    Args:
        dropout_compat: keep dropout on while scoring (the old scoring code's behaviour).
        num_classes: output classes of fc8 (101 for UCF101).
    """

    def __init__(self, dropout_compat: bool = False, num_classes: int = 101) -> None:
        super().__init__()
        self.dropout_compat = dropout_compat
        for name, cin, cout in _CONVS:
            self.add_module(name, nn.Conv3d(cin, cout, 3, padding=1))
        self.fc6 = nn.Linear(8192, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)

    @staticmethod
    def _pool(x: torch.Tensor, temporal: bool = True) -> torch.Tensor:
        kernel = (2, 2, 2) if temporal else (1, 2, 2)
        return F.max_pool3d(x, kernel, kernel, ceil_mode=True)

    def _conv(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return F.relu(getattr(self, name)(x))

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Convolutional part: (B, 3, 16, 112, 112) preprocessed clips → pool5 output."""
        x = self._pool(self._conv("conv1a", x), temporal=False)
        x = self._pool(self._conv("conv2a", x))
        for stage in ("3", "4", "5"):
            x = self._conv(f"conv{stage}b", self._conv(f"conv{stage}a", x))
            x = self._pool(x)
        return x

    def head(self, pool5: torch.Tensor) -> dict[str, torch.Tensor]:
        """Fully connected part: pool5 output (B, 512, 1, 4, 4) → fc7, logits and probs."""
        drop = self.training or self.dropout_compat
        h = F.relu(self.fc6(pool5.flatten(1)))
        h = F.dropout(h, 0.5, training=drop)
        fc7 = F.relu(self.fc7(h))
        dropped = F.dropout(fc7, 0.5, training=drop)
        logits = self.fc8(dropped)
        # The paper's FID code read fc7 after ReLU *and* dropout 7 (dropout was on): with
        # dropout_compat the FID features are those; otherwise fc7 after its ReLU.
        features = dropped if self.dropout_compat else fc7
        return {"fc7": features, "logits": logits, "probs": logits.softmax(dim=1)}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the network on preprocessed clips (see :func:`preprocess`).

        Args:
            x: float tensor (B, 3, 16, 112, 112), BGR, mean-subtracted.

        Returns:
            dict with ``pool5``, ``fc7`` (FID features), ``logits`` and ``probs`` (IS).
        """
        pool5 = self.trunk(x)
        return {"pool5": pool5, **self.head(pool5)}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """fc7 activations after ReLU (B, 4096): the FID features."""
        return self.forward(x)["fc7"]


def _crop_mean(mean: torch.Tensor) -> torch.Tensor:
    if tuple(mean.shape) == MEAN_SHAPE:
        return mean[..., 21:149]
    if tuple(mean.shape) == _MEAN_CROPPED:
        return mean
    raise ConfigError(
        f"C3D mean clip has shape {tuple(mean.shape)}; expected {MEAN_SHAPE} "
        f"(mean2.npz['mean']) or the cropped {_MEAN_CROPPED}"
    )


PREPROCESSING = ("tgan", "tganv2")
"""C3D input pipelines: ``tgan`` (TGAN v1's and the paper's code) and ``tganv2`` (tgan2's)."""


def preprocess(
    videos: torch.Tensor, mean: torch.Tensor | np.ndarray, style: str = "tgan"
) -> torch.Tensor:
    """Turn generated videos into C3D input clips, as TGAN v1's and the paper's code do
    (``style = "tgan"``, to 1e-4 of the paper's code) or as tgan2's own scoring does
    (``style = "tganv2"``: :func:`preprocess_tganv2`).

    Steps of ``tgan``, in order:

    1. ``x * 128 + 128``: [-1, 1] → [0, 256] pixel scale (no clamping, as the original).
    2. Each frame resized to 128×128 with bicubic interpolation (``align_corners=False``;
       skipped when frames already are 128×128).
    3. RGB → BGR (the Caffe/Chainer C3D channel order; the mean clip is BGR too).
    4. Subtract the mean clip: ``mean2.npz['mean']`` (3, 16, 128, 171) cropped to width
       21:149 → (3, 16, 128, 128); an already-cropped (3, 16, 128, 128) mean is accepted.
    5. Centre crop rows and columns 8:120 → (B, 3, 16, 112, 112).

    Args:
        videos: float tensor (B, 3, 16, H, W), RGB in [-1, 1].
        mean: the mean clip (full or cropped), BGR.
        style: ``tgan`` or ``tganv2`` (:data:`PREPROCESSING`).

    Returns:
        float32 tensor (B, 3, 16, 112, 112) on the device of ``videos``.
    """
    if videos.dim() != 5 or videos.shape[1] != 3 or videos.shape[2] != 16:
        raise ConfigError(
            f"C3D preprocessing expects videos (B, 3, 16, H, W); got {tuple(videos.shape)}"
        )
    if style == "tganv2":
        return preprocess_tganv2(videos, mean)
    if style != "tgan":
        raise ConfigError(f"C3D preprocessing: expected one of {PREPROCESSING}, got {style!r}")
    b, c, t, h, w = videos.shape
    x = videos.float() * 128.0 + 128.0
    if (h, w) != (128, 128):
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        frames = F.interpolate(frames, size=(128, 128), mode="bicubic", align_corners=False)
        x = frames.reshape(b, t, c, 128, 128).permute(0, 2, 1, 3, 4)
    x = x.flip(1)  # RGB → BGR
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x.device)
    x = x - _crop_mean(mean_t)
    return x[..., 8:120, 8:120].contiguous()


def preprocess_tganv2(videos: torch.Tensor, mean: torch.Tensor | np.ndarray) -> torch.Tensor:
    """C3D input clips as tgan2's scoring makes them (to compare with TGANv2's own numbers).

    ``x · 128`` and RGB → BGR, each frame resized straight to 112×112 bilinear with aligned
    corners (Chainer's ``resize_images``), then ``+ 128 − mean[:, :, 8:120, 8:120]`` — the
    full mean clip's rows *and columns* 8:120, an off-centre window of its 171 columns.

    Args:
        videos: float tensor (B, 3, 16, H, W), RGB in [-1, 1].
        mean: the full mean clip (3, 16, 128, 171), BGR.
    """
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=videos.device)
    if tuple(mean_t.shape) != MEAN_SHAPE:
        raise ConfigError(
            f"tganv2 C3D preprocessing needs the full mean clip {MEAN_SHAPE} (mean2.npz); got "
            f"{tuple(mean_t.shape)}"
        )
    b, c, t, h, w = videos.shape
    x = videos.float() * 128.0
    frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    frames = F.interpolate(frames, size=(112, 112), mode="bilinear", align_corners=True)
    x = frames.reshape(b, t, c, 112, 112).permute(0, 2, 1, 3, 4).flip(1)
    return (x + 128.0 - mean_t[..., 8:120, 8:120]).contiguous()


# ------------------------------------------------------------------------------------------
# weights


def _check_arrays(
    arrays: Mapping[str, Any], source: str, expected: Mapping[str, tuple[int, ...]]
) -> None:
    missing = [k for k in expected if k not in arrays]
    wrong = [
        f"{k}: got {tuple(arrays[k].shape)}, expected {shape}"
        for k, shape in expected.items()
        if k in arrays and tuple(arrays[k].shape) != shape
    ]
    problems = []
    if missing:
        listed = ", ".join(f"{k} {expected[k]}" for k in missing)
        problems.append(f"missing keys (expected shapes): {listed}")
    if wrong:
        problems.append("wrong shapes: " + "; ".join(wrong))
    if problems:
        raise ConfigError(f"{source} is not a UCF101 C3D file: " + "; ".join(problems))


def _read_npz(path: Path, what: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: {what} file not found") from err
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ConfigError(f"{path}: cannot read {what} as a numpy npz file ({err})") from err


def _to_state_dict(arrays: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for key in C3D_SHAPES:
        layer, param = key.split("/")
        name = "weight" if param == "W" else "bias"
        state[f"{layer}.{name}"] = torch.as_tensor(np.asarray(arrays[key], dtype=np.float32))
    return state


def load_chainer_npz(
    weights_path: str | Path, mean_path: str | Path
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Read TGANv2's Chainer C3D weights and mean clip with numpy only.

    Args:
        weights_path: ``conv3d_deepnetA_ucf.npz`` with keys ``conv1a/W``, ``conv1a/b``, …,
            ``fc8/W``, ``fc8/b`` (shapes in :data:`C3D_SHAPES`; Chainer's (out, in, k…)
            layout is PyTorch's, so no transposes).
        mean_path: ``mean2.npz`` whose ``mean`` array is (3, 16, 128, 171).

    Returns:
        ``(state_dict, mean)``: float32 tensors; the state dict loads strictly into
        :class:`C3D`; the mean is the full uncropped clip (:func:`preprocess` crops it).

    Raises:
        ConfigError: a file is missing or unreadable, or lacks keys / has wrong shapes (the
            message names the file, the keys and the expected shapes).
    """
    weights_path, mean_path = Path(weights_path), Path(mean_path)
    mean_arrays = _read_npz(mean_path, "C3D mean")  # the small file first: fail fast
    _check_arrays(mean_arrays, str(mean_path), {"mean": MEAN_SHAPE})
    arrays = _read_npz(weights_path, "C3D weights")
    _check_arrays(arrays, str(weights_path), C3D_SHAPES)
    mean = torch.as_tensor(np.asarray(mean_arrays["mean"], dtype=np.float32))
    return _to_state_dict(arrays), mean


def save_c3d(
    path: str | Path,
    state: Mapping[str, torch.Tensor],
    mean: torch.Tensor,
    preprocessing: str = "tgan",
) -> None:
    """Save converted C3D weights and the mean clip as a plain torch file (tensors only),
    atomically (a temporary file beside ``path``, then a rename).

    Args:
        path: destination file.
        state: a :class:`C3D` state dict (e.g. from :func:`load_chainer_npz`).
        mean: the mean clip, (3, 16, 128, 171) or cropped (3, 16, 128, 128).
        preprocessing: the input pipeline scoring with this file uses (:data:`PREPROCESSING`).
    """
    if preprocessing not in PREPROCESSING:
        raise ConfigError(f"preprocessing: expected one of {PREPROCESSING}, got {preprocessing!r}")
    if preprocessing == "tganv2" and tuple(mean.shape) != MEAN_SHAPE:
        raise ConfigError(f"tganv2 preprocessing needs the full mean clip {MEAN_SHAPE}")
    payload = {
        "format": _FORMAT,
        "version": 1,
        "state_dict": {k: v.detach().cpu().float().contiguous() for k, v in state.items()},
        "mean": mean.detach().cpu().float().contiguous(),
        "preprocessing": preprocessing,
    }
    atomic_torch_save(payload, Path(path))


def load_c3d(path: str | Path) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Load a file written by :func:`save_c3d` (``weights_only=True``).

    Returns:
        ``(state_dict, mean)`` as :func:`load_chainer_npz` returns them.

    Raises:
        ConfigError: the file is missing, not a converted C3D file, or has wrong shapes.
    """
    state, mean, _ = read_c3d(path)
    return state, mean


def c3d_preprocessing(path: str | Path) -> str:
    """The preprocessing a converted C3D file asks for (files before it was recorded: tgan)."""
    return read_c3d(path)[2]


def read_c3d(path: str | Path) -> tuple[dict[str, torch.Tensor], torch.Tensor, str]:
    """``(state_dict, mean, preprocessing)`` of a file written by :func:`save_c3d`, read once
    (``weights_only=True``); errors as :func:`load_c3d`'s."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: converted C3D file not found") from err
    except Exception as err:
        raise ConfigError(f"{path}: cannot read as a converted C3D torch file ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ConfigError(f"{path}: not a converted C3D file (expected format '{_FORMAT}')")
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: key 'state_dict' is missing or not a dict")
    by_npz_key = {
        f"{k.split('.')[0]}/{'W' if k.endswith('weight') else 'b'}": v for k, v in state.items()
    }
    _check_arrays(by_npz_key, str(path), C3D_SHAPES)
    mean = payload.get("mean")
    if not isinstance(mean, torch.Tensor):
        raise ConfigError(f"{path}: key 'mean' is missing or not a tensor")
    _crop_mean(mean)  # validates the shape
    style = payload.get("preprocessing", "tgan")  # files from before it was recorded: tgan
    if style not in PREPROCESSING:
        raise ConfigError(f"{path}: unknown C3D preprocessing {style!r}; expected {PREPROCESSING}")
    return _to_state_dict({k: v.numpy() for k, v in by_npz_key.items()}), mean, style


# ------------------------------------------------------------------------------------------
# Inception Score


def _as_float64(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def inception_score(probs: torch.Tensor | np.ndarray, splits: int = 1) -> tuple[float, float]:
    """Inception Score ``exp(E_x KL(p(y|x) ‖ p(y)))`` of class probabilities, in float64.

    The N rows are cut into ``splits`` consecutive equal parts (the last takes the
    remainder); p(y) is the mean prediction of each part; ``0·log 0`` counts as 0.

    The published protocols (TGANv2's one split per loop of fresh samples, StyleGAN-V's
    shuffled splits) are ``metric.is``'s; see docs/FIDELITY.md.

    Args:
        probs: (N, C) rows of class probabilities (softmax outputs).
        splits: number of parts, 1 ≤ splits ≤ N.

    Returns:
        ``(mean, std)`` over the splits (population std; 0 for one split).
    """
    p = _as_float64(probs)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ConfigError(f"inception_score expects probabilities (N, C); got {p.shape}")
    n = p.shape[0]
    if not 1 <= splits <= n:
        raise ConfigError(f"inception_score: splits must be in 1..{n}, got {splits}")
    size = n // splits
    scores = []
    for i in range(splits):
        part = p[i * size : (i + 1) * size if i < splits - 1 else n]
        py = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(part > 0, part * (np.log(part) - np.log(py)), 0.0)
        scores.append(float(np.exp(terms.sum(axis=1).mean())))
    return float(np.mean(scores)), float(np.std(scores))


# ------------------------------------------------------------------------------------------
# FID


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((s + s.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    ``|mu1 - mu2|² + tr S1 + tr S2 - 2 tr sqrt(S1 S2)``, where ``tr sqrt(S1 S2)`` is
    computed as the sum of square roots of the eigenvalues of the symmetric PSD matrix
    ``sqrt(S1) S2 sqrt(S1)`` (same spectrum as S1 S2); tiny negative eigenvalues from rounding
    are clamped to 0, so no complex parts arise. numpy only.
    """
    mu1, mu2 = _as_float64(mu1).ravel(), _as_float64(mu2).ravel()
    s1, s2 = _as_float64(sigma1), _as_float64(sigma2)
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ConfigError(
            f"frechet_distance: shapes disagree (mu1 {mu1.shape}, sigma1 {s1.shape}, "
            f"mu2 {mu2.shape}, sigma2 {s2.shape})"
        )
    root1 = _sqrt_psd(s1)
    m = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
