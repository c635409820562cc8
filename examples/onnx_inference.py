"""Generate videos from a file written by ``ndevgan export`` — without ndevgan or torch.

This is what another application does with an exported generator: read the model's metadata
(JSON under the key ``ndevgan``), draw the inputs it names with the shapes it gives (``z``:
uniform on [-1, 1] or standard normal; ``noise``, for stochastic generators: standard normal),
run ONNX Runtime, and write the videos as one MP4 grid with PyAV. It imports only numpy,
onnxruntime and av (and the standard library)::

    python examples/onnx_inference.py generator.onnx --n 4 --seed 0 --out videos.mp4

The seed drives numpy's generator, so the videos differ from ``ndevgan infer``'s for the same
seed (that one draws as ``ndevgan sample`` does, with torch's generator).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from fractions import Fraction

import av
import numpy as np
import onnxruntime as ort


def open_session(path: str, provider: str) -> ort.InferenceSession:
    """A session on CUDA when asked for and it loads (else the CPU), never spin-waiting."""
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if provider == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(path, options, providers=providers)


def read_metadata(session: ort.InferenceSession) -> dict:
    """The JSON metadata ``ndevgan export`` wrote into the model."""
    props = session.get_modelmeta().custom_metadata_map
    if "ndevgan" not in props:
        raise SystemExit("this ONNX file has no 'ndevgan' metadata: export it with ndevgan export")
    return json.loads(props["ndevgan"])


def draw_inputs(metadata: dict, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One array per graph input, of the shape and distribution the metadata gives."""
    inputs = {}
    for name, spec in metadata["inputs"].items():
        shape = (n, *spec["shape"][1:])  # the first dimension is the batch
        if spec["distribution"] == "uniform":
            value = rng.uniform(-1.0, 1.0, size=shape)
        else:
            value = rng.standard_normal(size=shape)
        inputs[name] = value.astype(spec["dtype"])
    return inputs


def grid_frames(videos: np.ndarray) -> np.ndarray:
    """Videos ``(N, T, C, H, W)`` in [-1, 1] → one tiled ``uint8`` video ``(T, H', W', 3)``
    (2-pixel white borders; even sizes, as H.264 wants)."""
    frames = np.clip(np.round((videos.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    frames = frames.transpose(0, 1, 3, 4, 2)  # N, T, H, W, C
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    n, t, h, w, _ = frames.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    pad = 2
    height = rows * (h + pad) + pad
    width = cols * (w + pad) + pad
    grid = np.full((t, height + height % 2, width + width % 2, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[:, y : y + h, x : x + w] = frames[i]
    return grid


def write_mp4(path: str, frames: np.ndarray, fps: int) -> None:
    """Write ``uint8`` frames ``(T, H, W, 3)`` as H.264 (MPEG-4 Part 2 where x264 is missing)."""
    with av.open(path, mode="w") as container:
        try:
            stream = container.add_stream("libx264", rate=fps)
            stream.options = {"crf": "18"}
        except (av.error.FFmpegError, ValueError):
            stream = container.add_stream("mpeg4", rate=fps)
            stream.bit_rate = 8_000_000
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, generate, write the MP4; print what ran."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an ONNX file written by `ndevgan export`")
    parser.add_argument("--n", type=int, default=4, help="number of videos")
    parser.add_argument("--seed", type=int, default=0, help="seed of numpy's generator")
    parser.add_argument("--out", default="videos.mp4", help="the MP4 to write")
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument("--provider", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args(argv)

    session = open_session(args.model, args.provider)
    metadata = read_metadata(session)
    inputs = draw_inputs(metadata, args.n, np.random.default_rng(args.seed))
    (videos,) = session.run(["video"], inputs)
    write_mp4(args.out, grid_frames(videos), args.fps)
    shapes = ", ".join(f"{k} {v.shape}" for k, v in inputs.items())
    print(f"provider {session.get_providers()[0]}; fed {shapes}; video {videos.shape}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
