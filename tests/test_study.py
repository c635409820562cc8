"""``ndevgan study`` and ``logger.eval``: grid planning, the best checkpoint, interruption and
resume end to end, and the results (table, CSV, plots, comparison grid) read back."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import ndevgan_core as nd
from ndevgan_core import evaluation, media
from ndevgan_core.errors import ConfigError
from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import assemble, resolve
from ndevgan_core.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from ndevgan_plugins import study

from .conftest import ROOT, fast_raw, make_fake_distribution

EXAMPLES = ROOT / "examples" / "studies"

# Three runs small enough that a step takes milliseconds; IS/FID on 8 samples.
SMALL_GRID = """
[study]
name = "small"

[protocol]
eval_every = 4
eval_samples = 8
final_loops = 2
final_samples = 8
batch_size = 8
comparison_videos = 2
classifier = "{classifier}"

[base.run]
iterations = 8
log_every = 2
sample_every = 100
checkpoint_every = 2
samples = 4
progress = false
threads = 1                 # tiny networks: one thread, no spinning against other processes

[base.plugins]
dataset = "dataset.shapes"

[base.backbone.tgan]
preset = "tiny"
g_channels = 4
d_channels = 4
batch_size = 4
latent_dim = 16

[base.temporal.conv1d]
channels = 16

[base.dataset.shapes]
videos = 64

[axes]
temporals = ["original", "temporal.ode"]
designs = ["single"]
orders = [1]
"""
SMALL_RUNS = ["tgan-conv1d-s0", "tgan-ode-o1-single-s0"]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    """A shapes classifier file with seeded random weights: scores are finite and exercised
    end to end without depending on the trained weights the package ships."""
    from ndevgan_plugins.shapes_classifier import ShapesClassifier, save_shapes_classifier

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("classifier") / "shapes_random.pt"
    save_shapes_classifier(path, ShapesClassifier(), {"note": "random weights for tests"})
    return path


@pytest.fixture
def registry() -> Registry:
    return Registry(entry_points=False, disabled=())


def write_grid(path: Path, text: str) -> Path:
    path.write_text(text, "utf-8")
    return path


CTRL_C_PLUGIN = """
import os, signal
import ndevgan_core as nd

@nd.hookimpl
def on_step(run, step, metrics):
    # as a person pressing Ctrl-C during this step of this run would
    if run.run_dir.name == "{run_id}" and step == {step}:
        os.kill(os.getpid(), signal.SIGINT)
"""


def study_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ndevgan_core", "study", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        timeout=600,
    )


# ------------------------------------------------------------------------------------------
# Planning


def test_grid_plans_the_product_skipping_axes_that_do_not_apply(tmp_path, registry, classifier):
    text = SMALL_GRID.format(classifier=classifier).replace(
        'temporals = ["original", "temporal.ode"]\ndesigns = ["single"]\norders = [1]',
        'temporals = ["original", "temporal.ode", "temporal.sde"]\n'
        'designs = ["single", "composed"]\norders = [1, 2]',
    )
    text += '\n[[override]]\nruns = "*-sde-*"\nset = { "temporal.sde.dt" = 0.05 }\n'
    text += '\n[[override]]\nruns = "tgan-ode-o2-composed-*"\nexclude = true\n'
    grid = study.load_grid(write_grid(tmp_path / "g.toml", text))
    plans = study.plan_runs(grid, registry, ["run.iterations=3"])
    ids = [p.run_id for p in plans]
    # conv1d has neither `order` nor `design`, the SDE no `order`: those axes are skipped
    assert ids == [
        "tgan-conv1d-s0",
        "tgan-ode-o1-single-s0",
        "tgan-ode-o1-composed-s0",
        "tgan-ode-o2-single-s0",
        "tgan-sde-single-s0",
        "tgan-sde-composed-s0",
    ]
    by_id = {p.run_id: p for p in plans}
    ode = by_id["tgan-ode-o2-single-s0"].config
    assert ode.components["temporal.ode"].order == 2
    assert ode.components["temporal.ode"].design == "single"
    assert ode.run.iterations == 3  # the command line's --set comes last
    assert by_id["tgan-sde-single-s0"].config.components["temporal.sde"].dt == 0.05
    assert (
        by_id["tgan-conv1d-s0"].original and by_id["tgan-conv1d-s0"].temporal == "temporal.conv1d"
    )
    # every run is scored by logger.eval with the protocol's settings
    logger = ode.components["logger.eval"]
    assert ode.plugins.loggers == ("logger.eval",)
    assert (logger.every, logger.samples, logger.classifier) == (4, 8, str(classifier))
    # parameter counts: latent 16, f = Linear(16, 16) + tanh; order 2 adds a Linear encoder
    assert by_id["tgan-ode-o1-single-s0"].params_temporal == 16 * 16 + 16
    # order 2 (general form): an encoder Linear(16, 16) for x'(0) and f = Linear(32, 16)
    assert by_id["tgan-ode-o2-single-s0"].params_temporal == (16 * 16 + 16) + (32 * 16 + 16)
    built = assemble(ode, registry)  # on the CPU this time, not the meta device
    assert by_id["tgan-ode-o2-single-s0"].params_generator == nd.count_parameters(
        built.gan.generator
    )


def test_invalid_grids_name_the_file_the_run_and_the_option(tmp_path, registry, classifier):
    base = SMALL_GRID.format(classifier=classifier)
    bad_order = base.replace("orders = [1]", "orders = [1, 4]")
    grid = study.load_grid(write_grid(tmp_path / "order.toml", bad_order))
    with pytest.raises(ConfigError, match=r"order.toml: run tgan-ode-o4-single-s0: temporal\.ode"):
        study.plan_runs(grid, registry)
    wrong_latent = base.replace("[axes]\n", '[axes]\nbackbones = ["backbone.tganv2"]\n').replace(
        '"original", ', '"temporal.conv1d", '
    )
    wrong_latent += '\n[base.backbone.tganv2]\npreset = "tiny"\n'
    grid = study.load_grid(write_grid(tmp_path / "latent.toml", wrong_latent))
    with pytest.raises(ConfigError, match=r"run tganv2-conv1d-s0: temporal.conv1d works on vector"):
        study.plan_runs(grid, registry)
    with pytest.raises(ConfigError, match=r"typo.toml: unknown section \[protcol\]"):
        study.load_grid(write_grid(tmp_path / "typo.toml", base.replace("[protocol]", "[protcol]")))
    with pytest.raises(ConfigError, match=r"eval.toml: protocol.eval_every: expected a number > 0"):
        study.load_grid(
            write_grid(tmp_path / "eval.toml", base.replace("eval_every = 4", "eval_every = 0"))
        )
    stray = base + '\n[[override]]\nruns = "mocogan-*"\nexclude = true\n'
    grid = study.load_grid(write_grid(tmp_path / "stray.toml", stray))
    with pytest.raises(ConfigError, match=r"override\]\] #1 .*matches no run"):
        study.plan_runs(grid, registry)
    grid = study.load_grid(write_grid(tmp_path / "ok.toml", base))
    with pytest.raises(ConfigError, match="--only nope-\\* matches no run"):
        study.select_runs(study.plan_runs(grid, registry), ["nope-*"])


def test_paper_grids_plan_the_papers_runs(registry):
    finding_f = study.plan_runs(study.load_grid(EXAMPLES / "paper_finding_f.toml"), registry)
    assert [p.run_id for p in finding_f] == [
        f"{b}-ode-o1-{d}-s0" for b in ("tgan", "mocogan") for d in ("single", "composed", "matched")
    ]
    counts = {p.run_id: p.params_temporal for p in finding_f}
    assert counts["tgan-ode-o1-single-s0"] == 628_324 + 100 * 100 + 100  # pre-MLP + f
    # every count against the authors': tests/test_fidelity.py
    family = study.plan_runs(study.load_grid(EXAMPLES / "paper_family_order.toml"), registry)
    ids = [p.run_id for p in family]
    assert len(ids) == 15 and "tganv2-clstm-s0" in ids and "mocogan-ode-o3-s0" in ids
    by_id = {p.run_id: p.config for p in family}
    assert by_id["tganv2-sde-s0"].components["temporal.sde"].dt == 0.05
    assert by_id["tgan-sde-s0"].components["temporal.sde"].dt == 0.025
    assert by_id["tganv2-ode-o1-s0"].components["dataset.ucf101"].path == "ucf101-192.lmdb"
    tiny = study.plan_runs(study.load_grid(EXAMPLES / "tiny.toml"), registry)
    configurations = ["tgan-conv1d"] + [f"tgan-ode-o{k}-single" for k in (1, 2, 3)]
    configurations.append("tgan-sde-single")
    assert [p.run_id for p in tiny] == [f"{c}-s{s}" for c in configurations for s in (0, 1, 2)]
    # conv1d and the SDE train until flat: 3,000 iterations; the ODEs flatten by 2,000
    iterations = {p.run_id.rsplit("-s", 1)[0]: p.config.run.iterations for p in tiny}
    assert iterations == {
        c: 3000 if c in ("tgan-conv1d", "tgan-sde-single") else 2000 for c in configurations
    }


# ------------------------------------------------------------------------------------------
# logger.eval


class ScriptedEvaluate:
    """Stands in for evaluation.evaluate: returns a given score per step and records what the
    generator looked like when it was scored."""

    def __init__(self, scores: dict[int, float]) -> None:
        self.scores = scores
        self.calls: list[dict] = []

    def __call__(self, generator, metrics, **kwargs):
        step = self.current_step
        self.calls.append(
            {
                "step": step,
                "training": generator.training,
                "metrics": tuple(metrics),
                "samples": kwargs["samples"],
                "state": {k: v.clone() for k, v in generator.state_dict().items()},
            }
        )
        value = self.scores[step]
        return {"is": evaluation.MetricResult(value, 0.25, (value,), "scripted")}

    @nd.hookimpl(tryfirst=True)
    def on_step(self, run, step, metrics):
        self.current_step = step


def eval_config(registry, **run):
    raw = fast_raw(checkpoint_every=2, keep_checkpoints=1, sample_every=100, threads=1, **run)
    raw["plugins"]["loggers"] = ["logger.eval"]
    raw["logger"] = {"eval": {"every": 1, "samples": 6}}
    return resolve(raw, registry)


def test_eval_logger_keeps_the_best_checkpoint_and_survives_resume(tmp_path, registry, monkeypatch):
    script = ScriptedEvaluate({1: 1.5, 2: 3.0, 3: 2.0, 4: 2.5, 5: 2.9, 6: 3.5})
    monkeypatch.setattr(evaluation, "evaluate", script)
    registry.add_plugin(script)
    run_dir = nd.train(eval_config(registry, iterations=4), registry, run_dir=tmp_path / "r")

    assert [c["step"] for c in script.calls] == [1, 2, 3, 4]
    assert all(not c["training"] and c["metrics"] == ("is",) for c in script.calls)
    assert script.calls[0]["samples"] == 6
    records = study.read_eval_log(run_dir)
    assert [(r["step"], r["is_mean"], r["is_std"]) for r in records] == [
        (1, 1.5, 0.25),
        (2, 3.0, 0.25),
        (3, 2.0, 0.25),
        (4, 2.5, 0.25),
    ]
    best = json.loads((run_dir / "best.json").read_text())
    assert best == {
        "step": 2,
        "metric": "is",
        "mean": 3.0,
        "std": 0.25,
        "checkpoint": "checkpoints/best.pt",
    }
    # best.pt is neither resumed from nor pruned (step-00000002.pt was): only step-*.pt are
    assert [p.name for p in list_checkpoints(run_dir)] == ["step-00000004.pt"]
    assert latest_checkpoint(run_dir).name == "step-00000004.pt"
    saved = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert saved["step"] == 2 and saved["best"]["mean"] == 3.0
    for key, value in script.calls[1]["state"].items():  # the weights scored at step 2
        assert torch.equal(saved["model"][f"generator.{key}"], value), key
    assert not torch.equal(
        saved["model"]["generator.temporal.field.0.weight"],
        load_checkpoint(run_dir)["model"]["generator.temporal.field.0.weight"],
    )

    # a crash after an evaluation but before the next checkpoint leaves a newer record behind
    with (run_dir / "eval.jsonl").open("a") as fh:
        fh.write(json.dumps({"step": 5, "is_mean": 99.0, "is_std": 0.0}) + "\n")
    fresh = Registry(entry_points=False, disabled=())
    fresh.add_plugin(script)
    nd.train(eval_config(fresh, iterations=6), fresh, resume=run_dir)
    records = study.read_eval_log(run_dir)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[4]["is_mean"] == 2.9  # the stale 99.0 of step 5 was dropped on resume
    best = json.loads((run_dir / "best.json").read_text())
    # 2.9 at step 5 does not beat the 3.0 read back from best.json; 3.5 at step 6 does
    assert best["step"] == 6 and best["mean"] == 3.5
    assert load_checkpoint(run_dir / "checkpoints" / "best.pt")["step"] == 6


# ------------------------------------------------------------------------------------------
# The study end to end


def mtimes(paths):
    return {p: p.stat().st_mtime_ns for p in paths}


def test_study_end_to_end_interrupted_then_resumed(tmp_path, classifier):
    grid = write_grid(tmp_path / "small.toml", SMALL_GRID.format(classifier=classifier))
    out = tmp_path / "out"
    runs = out / "runs"

    # first invocation: Ctrl-C (a real SIGINT, sent by a test plugin) at step 6 of run 2
    site = make_fake_distribution(
        tmp_path / "site", "ndevgan-ctrl-c", "ndevgan_ctrl_c",
        CTRL_C_PLUGIN.format(run_id=SMALL_RUNS[1], step=6), entry_point="ctrl-c",
    )  # fmt: skip
    first = study_cli(str(grid), "--out", str(out), env={"PYTHONPATH": str(site)})
    assert first.returncode == 130, first.stdout + first.stderr
    assert f"{SMALL_RUNS[1]}: interrupted at step 6 of 8" in first.stdout
    # the trainer's stop message points at the study, not at `ndevgan run --resume`
    assert "Continue with: the same `ndevgan study` command" in first.stderr
    assert "ndevgan run --resume" not in first.stderr
    assert (runs / SMALL_RUNS[0] / "final.json").is_file()
    assert [p.name for p in list_checkpoints(runs / SMALL_RUNS[1])][-1] == "step-00000006.pt"
    assert not (runs / SMALL_RUNS[1] / "final.json").exists()
    done_files = [p for p in (runs / SMALL_RUNS[0]).rglob("*") if p.is_file()]
    before = mtimes(done_files)

    # second invocation: run 1 skipped, run 2 continued from its checkpoint
    second = study_cli(str(grid), "--out", str(out))
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"{SMALL_RUNS[0]}: finished earlier, skipped" in second.stdout
    assert f"{SMALL_RUNS[1]}: resuming from step 6 of 8" in second.stdout
    assert mtimes(done_files) == before  # nothing of the finished run was touched
    resumed = runs / SMALL_RUNS[1]
    logged = [json.loads(x)["step"] for x in (resumed / "log.jsonl").read_text().splitlines()]
    assert logged == [2, 4, 6, 8]  # continued: no second step 2
    assert [r["step"] for r in study.read_eval_log(resumed)] == [4, 8]
    for run_id in SMALL_RUNS:
        final = json.loads((runs / run_id / "final.json").read_text())
        assert final["run"] == run_id and final["step"] in (4, 8)
        assert len(final["metrics"]["is"]["values"]) == 2  # final_loops batches
        assert final["step"] == json.loads((runs / run_id / "best.json").read_text())["step"]

    # results.csv: one row per run, every column, finite numbers
    with (out / "results.csv").open() as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames) == study.CSV_COLUMNS
    assert [r["run"] for r in rows] == SMALL_RUNS
    for row in rows:
        assert row["status"] == "done"
        for column in ("is_mean", "is_std", "fid_mean", "fid_std", "steps_per_s", "train_seconds"):
            assert math.isfinite(float(row[column])), (row["run"], column)
        assert float(row["is_mean"]) >= 1.0 and float(row["fid_mean"]) >= 0.0
        assert int(row["params_generator"]) > int(row["params_temporal"]) > 0
    assert rows[0]["temporal"] == "temporal.conv1d" and rows[0]["original"] == "True"
    assert (rows[1]["design"], rows[1]["order"]) == ("single", "1")
    table = (out / "results.md").read_text()
    assert all(f"`{r}`" in table for r in SMALL_RUNS) and "2 of 2 runs finished" in table
    assert "Iterations per run (as trained, after any --set): 8" in table

    # the plots and the comparison grid, read back
    for name in ("is_over_training.png", "final_metrics.png"):
        image = media.read_png(out / name)
        assert image.shape[0] >= 300 and image.shape[1] >= 500, name
        assert image.std() > 5, name  # not a blank canvas
    strip = media.read_png(out / "comparison.png")
    per_run = 2 * (32 + 2) + 2  # two videos per run, 32 px frames, 2 px padding
    assert strip.shape == (2 * per_run + 4, 16 * (32 + 2) + 2, 3)  # a 4 px band between runs
    video = media.read_video(out / "comparison.mp4")
    assert video.shape[0] == 16 and video.shape[1:3] == (2 * 34 + 2, 2 * 34 + 2)
    assert "Samples on the same latents" in table and "comparison.mp4" in table


@pytest.mark.slow
def test_study_torchrun_launcher_trains_with_two_processes(tmp_path, classifier):
    grid = write_grid(tmp_path / "small.toml", SMALL_GRID.format(classifier=classifier))
    out = tmp_path / "out"
    result = study_cli(
        str(grid),
        "--out",
        str(out),
        "--only",
        "tgan-ode-*",
        "--launcher",
        "torchrun",
        "--nproc-per-node",
        "2",
        "--set",
        "run.device=cpu",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = out / "runs" / "tgan-ode-o1-single-s0"
    assert [r["step"] for r in study.read_eval_log(run_dir)] == [4, 8]
    assert load_checkpoint(run_dir / "checkpoints" / "best.pt")["step"] in (4, 8)
    final = json.loads((run_dir / "final.json").read_text())
    assert math.isfinite(final["metrics"]["fid"]["mean"])
    with (out / "results.csv").open() as fh:
        rows = {r["run"]: r["status"] for r in csv.DictReader(fh)}
    assert rows == {SMALL_RUNS[0]: "pending", SMALL_RUNS[1]: "done"}


def processes_mentioning(path: Path) -> list[int]:
    """Pids of the live processes whose command line mentions ``path`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue  # ended meanwhile
            if str(path) in cmdline:
                found.append(int(entry.name))
    return found


def test_study_jobs_trains_runs_in_subprocesses_and_reports_across_seeds(tmp_path, classifier):
    text = SMALL_GRID.format(classifier=classifier) + "seeds = [0, 1]\n"
    grid = write_grid(tmp_path / "small.toml", text)
    out = tmp_path / "out"
    runs = out / "runs"
    ids = ["tgan-conv1d-s0", "tgan-conv1d-s1", "tgan-ode-o1-single-s0", "tgan-ode-o1-single-s1"]

    # Ctrl-C (a real SIGINT, inside that run's subprocess) at step 6 of one run: the others
    # finish and are scored, the study says which run stopped and exits 130
    site = make_fake_distribution(
        tmp_path / "site", "ndevgan-ctrl-c", "ndevgan_ctrl_c",
        CTRL_C_PLUGIN.format(run_id=ids[2], step=6), entry_point="ctrl-c",
    )  # fmt: skip
    first = study_cli(str(grid), "--out", str(out), "--jobs", "2", env={"PYTHONPATH": str(site)})
    assert first.returncode == 130, first.stdout + first.stderr
    assert f"{ids[2]}: interrupted at step 6 of 8" in first.stdout
    assert f"{ids[0]}: training 8 steps (output: {runs / ids[0] / 'train.log'})" in first.stdout
    for run_id in ids:
        log = (runs / run_id / "train.log").read_text()
        assert "Traceback" not in log and "\r" not in log  # no progress bars in the file
        assert ((runs / run_id / "final.json").is_file()) == (run_id != ids[2]), run_id
    assert [p.name for p in list_checkpoints(runs / ids[2])][-1] == "step-00000006.pt"

    second = study_cli(str(grid), "--out", str(out), "--jobs", "2")
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"{ids[2]}: resuming from step 6 of 8" in second.stdout
    assert sum("finished earlier, skipped" in line for line in second.stdout.splitlines()) == 3

    # across seeds: the mean and sample std of the two seeds' final figures, per configuration
    finals = {r: json.loads((runs / r / "final.json").read_text())["metrics"] for r in ids}
    with (out / "results_by_configuration.csv").open() as fh:
        summary = {row["configuration"]: row for row in csv.DictReader(fh)}
    assert list(summary) == ["tgan-conv1d", "tgan-ode-o1-single"]
    for configuration, pair in (("tgan-conv1d", ids[:2]), ("tgan-ode-o1-single", ids[2:])):
        row = summary[configuration]
        assert row["seeds"] == "2"
        for metric in ("is", "fid"):
            values = [finals[r][metric]["mean"] for r in pair]
            mean, std = sum(values) / 2, abs(values[0] - values[1]) / math.sqrt(2)
            assert float(row[f"{metric}_mean"]) == pytest.approx(mean, rel=1e-5)
            assert float(row[f"{metric}_std"]) == pytest.approx(std, rel=1e-5, abs=1e-9)
    table = (out / "results.md").read_text()
    assert "Across seeds" in table and "| `tgan-ode-o1-single` | 2 |" in table
    # two IS scores (steps 4 and 8) in each run's second half: too few for a late trend
    assert "| best step | IS trend | IS | FID |" in table and "IS trend: the least-squares" in table
    assert summary["tgan-conv1d"]["late_trend"] == summary["tgan-conv1d"]["late_trend_std"] == ""
    for name in ("is_over_training.png", "final_metrics.png"):
        image = media.read_png(out / name)
        assert image.std() > 5, name


def test_ctrl_c_on_a_study_with_jobs_checkpoints_every_running_run(tmp_path, classifier):
    grid = write_grid(tmp_path / "small.toml", SMALL_GRID.format(classifier=classifier))
    out = tmp_path / "out"
    runs = [out / "runs" / run_id for run_id in SMALL_RUNS]
    study_process = subprocess.Popen(
        [sys.executable, "-m", "ndevgan_core", "study", str(grid), "--out", str(out), "--jobs",
         "2", "--set", "run.iterations=1000000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not all(list_checkpoints(run) for run in runs):
            assert time.monotonic() < deadline and study_process.poll() is None
            time.sleep(0.5)
        study_process.send_signal(signal.SIGINT)  # as Ctrl-C, to the study process alone
        stdout, stderr = study_process.communicate(timeout=300)
    finally:
        study_process.kill()
    assert study_process.returncode == 130, stdout + stderr
    for run, run_id in zip(runs, SMALL_RUNS, strict=True):
        assert f"{run_id}: interrupted at step" in stdout
        step = int(stdout.split(f"{run_id}: interrupted at step ")[1].split()[0].replace(",", ""))
        # each run stopped at a checkpoint of the step it reached, not killed mid-way
        assert list_checkpoints(run)[-1].name == f"step-{step:08d}.pt"
        assert "Continue with" in (run / "train.log").read_text()
        assert not (run / "final.json").exists()
    assert processes_mentioning(out) == []  # no training process outlives the study


FAILING_PLUGIN = """
import ndevgan_core as nd

@nd.hookimpl
def on_step(run, step, metrics):
    if run.run_dir.name == "{run_id}" and step == {step}:
        raise RuntimeError("a broken plugin")
"""


def test_a_failing_run_under_jobs_stops_the_others_at_a_checkpoint(tmp_path, classifier):
    grid = write_grid(tmp_path / "small.toml", SMALL_GRID.format(classifier=classifier))
    out = tmp_path / "out"
    site = make_fake_distribution(
        tmp_path / "site", "ndevgan-broken", "ndevgan_broken",
        FAILING_PLUGIN.format(run_id=SMALL_RUNS[1], step=40), entry_point="broken",
    )  # fmt: skip
    result = study_cli(str(grid), "--out", str(out), "--jobs", "2", "--set",
                       "run.iterations=1000000", env={"PYTHONPATH": str(site)})  # fmt: skip
    assert result.returncode not in (0, 130), result.stdout + result.stderr
    failed = out / "runs" / SMALL_RUNS[1]
    assert f"run {SMALL_RUNS[1]}: training exited with status" in result.stderr
    assert f"its output is in {failed / 'train.log'}" in result.stderr
    assert "Traceback" not in result.stderr
    assert "a broken plugin" in (failed / "train.log").read_text()
    other = out / "runs" / SMALL_RUNS[0]  # stopped by the study, at a checkpoint
    assert list_checkpoints(other) and "Continue with" in (other / "train.log").read_text()
    assert processes_mentioning(out) == []


def test_no_run_starts_after_the_study_was_interrupted(tmp_path):
    children = study.ChildRuns()
    marker = tmp_path / "ran"
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    assert children.run(command, tmp_path / "a.log") == 0 and marker.is_file()
    marker.unlink()
    children.interrupt()
    assert children.run(command, tmp_path / "b.log") == 130  # as Ctrl-C: resumable later
    assert not marker.exists()


def test_jobs_is_for_the_local_launcher(tmp_path, classifier):
    grid = write_grid(tmp_path / "small.toml", SMALL_GRID.format(classifier=classifier))
    result = study_cli(str(grid), "--out", str(tmp_path / "o"), "--jobs", "2", "--launcher",
                       "torchrun", "--dry-run")  # fmt: skip
    assert result.returncode != 0
    assert "--jobs" in result.stderr and "local launcher" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_result_written_before_an_option_existed_still_counts_at_its_default(
    tmp_path, registry, classifier
):
    grid = study.load_grid(
        write_grid(tmp_path / "g.toml", SMALL_GRID.format(classifier=classifier))
    )
    plan = study.plan_runs(grid, registry, [])[1]
    config = plan.config.to_dict()
    final = {"protocol": grid.protocol.final_record(), "config": config}
    assert study.holds_result_of(final, plan, grid.protocol, registry)
    older = json.loads(json.dumps(config))
    del older["backbone"]["tgan"]["minibatch_std"]  # a record from before the option
    assert study.holds_result_of({**final, "config": older}, plan, grid.protocol, registry)
    other = json.loads(json.dumps(config))
    other["backbone"]["tgan"]["minibatch_std"] = True
    assert not study.holds_result_of({**final, "config": other}, plan, grid.protocol, registry)
    other["backbone"]["tgan"]["minibatch_std"] = "maybe"  # unreadable: not this run's result
    assert not study.holds_result_of({**final, "config": other}, plan, grid.protocol, registry)
    assert not study.holds_result_of({**final, "protocol": {}}, plan, grid.protocol, registry)
    assert not study.holds_result_of(None, plan, grid.protocol, registry)


def test_late_trend_is_the_slope_of_the_second_half_per_thousand_steps():
    from ndevgan_plugins.study import late_trend

    # IS rises 2 per 1,000 steps up to step 2,000, then 0.5 per 1,000 steps: only the second
    # half (steps 2,000-4,000) counts. FID records without IS are ignored.
    records = [{"step": s, "is_mean": 2e-3 * min(s, 2000) + 5e-4 * max(s - 2000, 0)}
               for s in range(0, 4001, 500)]  # fmt: skip
    records.insert(3, {"step": 1500, "fid_mean": 80.0})
    assert late_trend(records, "is") == pytest.approx(0.5)
    assert late_trend(records, "fid") is None  # one FID score: no trend
    flat = [{"step": s, "is_mean": 6.0 + (0.1 if s % 1000 else -0.1)} for s in range(0, 4001, 500)]
    assert abs(late_trend(flat, "is")) < 0.06
    assert late_trend(records[-2:], "is") is None  # two scores in the second half: no slope


def test_seed_rows_give_the_late_trends_mean_and_spread_across_seeds():
    from ndevgan_plugins.study import seed_rows

    plans = [SimpleNamespace(run_id=f"r{i}", configuration="c") for i in range(3)]
    rows = [
        {"run": f"r{i}", "status": "done", "steps_per_s": 1.0, "train_seconds": 60.0,
         "best_step": 100, "late_trend": trend, "is_mean": 5.0, "fid_mean": 70.0,
         "fvd_mean": None}
        for i, trend in enumerate([0.2, 0.4, None])
    ]  # fmt: skip
    [summary] = seed_rows(rows, plans)
    assert summary["late_trend"] == pytest.approx(0.3)
    assert summary["late_trend_std"] == pytest.approx(math.sqrt(0.02))


def test_figures_of_one_batch_show_no_spread():
    from ndevgan_plugins.study.report import _pm

    assert _pm(12.3456, 0.0) == "12.35" and _pm(12.3456, None) == "12.35"
    assert _pm(12.3456, 0.01234) == "12.35 ± 0.01" and _pm(None, None) == "—"


def test_a_grid_may_ask_for_fvd_among_its_final_figures(tmp_path, classifier):
    text = SMALL_GRID.format(classifier=classifier).replace(
        "[protocol]\n", '[protocol]\nmetrics = ["is", "fvd"]\neval_metric = "fvd"\n'
    )
    grid = study.load_grid(write_grid(tmp_path / "fvd.toml", text))
    assert grid.protocol.metrics == ("is", "fvd") and grid.protocol.eval_metric == "fvd"
    with pytest.raises(ConfigError, match="expected a list of distinct metrics from is, fid, fvd"):
        study.load_grid(write_grid(tmp_path / "kid.toml", text.replace('"fvd"]', '"kid"]')))
