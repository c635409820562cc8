"""tools/gpu_check.py, the one-command GPU validation, runs on the CPU (--quick): it cannot rot."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import torch

from .conftest import ROOT

EXPECTED = [
    "environment",
    "train-tgan-ode-fp32", "train-tgan-ode-bf16",
    "train-mocogan-ode-fp32", "train-mocogan-ode-bf16",
    "train-tganv2-ode-fp32", "train-tganv2-ode-bf16",
    "compile", "ddp-1", "ddp-2", "onnx", "c3d", "study-estimate",
]  # fmt: skip


def test_quick_cpu_run_reports_every_check_as_json(tmp_path):
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--device", "cpu", "--quick",
         "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == EXPECTED
    assert report["device"] == "cpu" and report["quick"] is True
    assert report["summary"] == {"pass": 8, "fail": 0, "skip": 5}
    assert all(c["status"] in ("pass", "skip") and c["seconds"] >= 0 for c in checks.values())
    for name in ("train-tgan-ode-bf16", "compile", "ddp-2"):
        assert checks[name]["status"] == "skip" and checks[name]["reason"]
    env = checks["environment"]["details"]
    assert env["torch"] == torch.__version__ and "CPUExecutionProvider" in env["ort_providers"]
    for backbone in ("tgan", "mocogan", "tganv2"):
        train = checks[f"train-{backbone}-ode-fp32"]["details"]
        assert train["steps"] == 3 and train["steps_per_s"] > 0
        assert all(math.isfinite(v) for v in train["final_losses"].values())
    assert checks["ddp-1"]["details"] == {"processes": 1, "backend": "gloo", "steps": 3}
    onnx = checks["onnx"]["details"]
    assert onnx["provider"] == "CPUExecutionProvider" and onnx["max_abs_difference"] < 1e-3
    assert onnx["ort_videos_per_s"] > 0 and onnx["eager_videos_per_s"] > 0
    assert checks["c3d"]["details"]["is_samples"] == 4
    assert 1.0 <= checks["c3d"]["details"]["is_random_weights"] <= 101.0
    estimate = checks["study-estimate"]["details"]
    assert estimate["paper_finding_f_hours"] > 0 and estimate["paper_family_order_hours"] > 0
    assert estimate["paper_finding_f_unmeasured"] == []
    # one printed line per check, and the totals
    assert (
        sum(line.split()[0] in ("PASS", "SKIP", "FAIL") for line in proc.stdout.splitlines()) == 13
    )
    assert "8 passed, 0 failed, 5 skipped" in proc.stdout
