"""Atomic writes: the target is the old file or the whole new one, never a part."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from ndevgan_core.files import (
    atomic_open,
    atomic_path,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
from ndevgan_core.training.checkpoint import atomic_torch_save


def test_writers_create_parents_and_round_trip(tmp_path):
    assert write_bytes_atomic(tmp_path / "a" / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert write_text_atomic(tmp_path / "t.txt", "é\r\n").read_bytes() == "é\r\n".encode()
    assert json.loads(write_json_atomic(tmp_path / "j.json", {"x": [1]}).read_text()) == {"x": [1]}
    with atomic_open(tmp_path / "w.txt", "w") as fh:
        fh.write("text")
    assert (tmp_path / "w.txt").read_text() == "text"
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "a", "b.bin", "j.json", "t.txt", "w.txt"
    ]  # fmt: skip


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_open(target) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old"
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "plot.png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path  # writers pick formats from it
        tmp.write_bytes(b"partial")
        raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_files_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        written = atomic_torch_save({"w": torch.ones(2)}, tmp_path / "c.pt")
    finally:
        os.umask(old)
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    assert torch.equal(torch.load(written, weights_only=True)["w"], torch.ones(2))


def test_atomic_open_refuses_modes_that_are_not_fresh_writes(tmp_path):
    with pytest.raises(ValueError, match="'wb' or 'w'"), atomic_open(tmp_path / "x", "a"):
        pass
