"""The ``ndevgan`` command in real subprocesses: run, resume, sample, plugins, info, errors."""

from __future__ import annotations

import json
import re
import tomllib

import torch

from ndevgan_core import media
from ndevgan_core.training.checkpoint import load_checkpoint

from .conftest import FAST, TEMPORAL_SOURCE, ndevgan


def test_run_sample_and_resume_through_the_cli(tmp_path):
    out = ndevgan(
        "run",
        *FAST,
        "--set",
        f"run.out={tmp_path}",
        "--set",
        "run.name=r",
        "--set",
        "run.iterations=3",
        # the demo's lr_decay makes every step's rate depend on run.iterations, so raising them
        # on --resume changes the schedule of the steps already taken: constant rates here
        "--set",
        "run.lr_decay=0",
    )
    run_dir = tmp_path / "r"
    assert f"run directory: {run_dir}" in out.stdout
    assert load_checkpoint(run_dir)["step"] == 3
    assert (run_dir / "samples" / "step-00000003.mp4").is_file()

    # continue the same run to step 5: same config, more iterations
    ndevgan("run", "--resume", str(run_dir), "--set", "run.iterations=5")
    assert load_checkpoint(run_dir)["step"] == 5
    # resuming a finished run says so instead of silently doing nothing
    log = (run_dir / "log.jsonl").read_text()
    proc = ndevgan("run", "--resume", str(run_dir))
    assert (
        "nothing to train" in proc.stdout and "is at step 5 and run.iterations is 5" in proc.stdout
    )
    assert (run_dir / "log.jsonl").read_text() == log
    # … which equals a run that went to 5 directly
    ndevgan(
        "run",
        *FAST,
        "--set",
        f"run.out={tmp_path}",
        "--set",
        "run.name=s",
        "--set",
        "run.iterations=5",
        "--set",
        "run.lr_decay=0",
    )
    a, b = load_checkpoint(run_dir)["model"], load_checkpoint(tmp_path / "s")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)

    target = tmp_path / "out" / "samples.mp4"
    out = ndevgan("sample", str(run_dir), "--n", "5", "--out", str(target), "--seed", "3")
    assert "from step 5" in out.stdout
    video = media.read_video(target)
    assert video.shape[0] == 16
    strip = media.read_png(target.with_suffix(".png"))
    assert strip.shape[0] == 5 * (32 + 2) + 2  # one row per video
    gif = tmp_path / "out" / "s.gif"
    ndevgan("sample", str(run_dir), "--n", "2", "--out", str(gif))
    assert media.read_video(gif).shape[0] == 16


def test_run_final_score_prints_is_fid_and_the_last_samples(tmp_path):
    sets = ["run.out=" + str(tmp_path), "run.name=r", "run.iterations=2", "run.final_score=16"]
    env = {"NDEVGAN_CACHE": str(tmp_path / "cache")}
    out = ndevgan("run", *FAST, *[a for s in sets for a in ("--set", s)], env=env).stdout
    lines = out.splitlines()
    head = lines.index(
        f"quick score at step 2 (16 videos, dataset.shapes's classifier; 2,048: ndevgan eval "
        f"{tmp_path / 'r'}):"
    )
    names = [line.split()[0] for line in lines[head + 1 : head + 3]]
    values = [float(line.split()[1]) for line in lines[head + 1 : head + 3]]
    assert names == ["IS", "FID"] and 1 <= values[0] <= 25 and values[1] > 0
    assert (
        lines[head + 3] == f"samples of the last step: {tmp_path / 'r/samples/step-00000002.png'}"
    )
    assert len(list((tmp_path / "cache" / "fid-stats").glob("*.npz"))) == 1  # real statistics
    off = [*sets[:2], "run.iterations=1", "run.final_score=0", "run.name=q"]  # the demo's is 512
    plain = ndevgan("run", *FAST, *[a for s in off for a in ("--set", s)], env=env).stdout
    assert "quick score" not in plain and "samples of the last step:" in plain


def test_resume_rejects_plugin_changes(tmp_path):
    ndevgan(
        "run",
        *FAST,
        "--set",
        f"run.out={tmp_path}",
        "--set",
        "run.name=r",
        "--set",
        "run.iterations=1",
    )
    proc = ndevgan(
        "run", "--resume", str(tmp_path / "r"), "--set", "temporal.ode.method=euler", check=False
    )
    assert proc.returncode != 0 and "only the other run.* settings may change" in proc.stderr


def test_plugins_table_and_json():
    table = ndevgan("plugins").stdout
    for name in ("backbone.tgan", "temporal.ode", "temporal.conv1d", "dataset.shapes"):
        assert name in table
    assert "method = 'rk4'" in table
    records = json.loads(ndevgan("plugins", "--json").stdout)
    ode = next(r for r in records if r["name"] == "temporal.ode")
    assert ode["kind"] == "temporal" and ode["package"] == "ndevgan" and ode["version"]
    assert ode["summary"]
    options = {o["name"]: o for o in ode["options"]}
    assert options["method"]["default"] == "rk4" and "dopri5" in options["method"]["choices"]
    assert options["adjoint"]["default"] is False
    # the [run] settings are listed too, with their defaults and help
    run = next(r for r in records if r["name"] == "run")
    run_options = {o["name"]: o for o in run["options"]}
    assert run["kind"] == "run" and {"iterations", "device", "threads", "amp"} <= set(run_options)
    assert run_options["iterations"]["help"] and "iterations = 600" in table
    only_run = json.loads(ndevgan("plugins", "--kind", "run", "--json").stdout)
    assert [r["name"] for r in only_run] == ["run"]


def test_print_config_shows_the_resolved_config_without_training(tmp_path):
    proc = ndevgan(
        "run", "--plugin", "temporal.ode", "--set", "temporal.ode.order=2",
        "--set", f"run.out={tmp_path}", "--print-config",
    )  # fmt: skip
    printed = tomllib.loads(proc.stdout)
    assert printed["plugins"]["temporal"] == "temporal.ode"
    assert printed["temporal"]["ode"]["order"] == 2 and printed["temporal"]["ode"]["method"]
    assert printed["run"]["iterations"] == 2000 and printed["backbone"]["tgan"]["preset"] == "tiny"
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing written


def _variant_counts(out: str) -> dict[str, int]:
    rows = dict(re.findall(r"^  (temporal\.\S+(?: \w+=\w+)*)\s+([\d,]+)", out, re.MULTILINE))
    return {label: int(n.replace(",", "")) for label, n in rows.items()}


def test_info_prints_parameter_counts_per_module():
    out = ndevgan("info", "--plugin", "backbone.tgan").stdout
    assert "paper preset" in out and "temporal.conv1d" in out
    assert "826,468" in out and "3,622,691" in out and "11,033,281" in out
    # the authors' TGAN-ODE: pre-MLP 628,324 + f 10,100; generator 4,261,115
    out = ndevgan("info", "--plugin", "backbone.tgan", "--plugin", "temporal.ode").stdout
    assert re.search(r"generator\.temporal\s+638,424", out)
    assert re.search(r"generator \(total\)\s+4,261,115", out)
    assert "pre_mlp=[512,512,512]" in out and "form=chain" in out and "adjoint=true" in out
    counts = _variant_counts(out)
    dynamics = [k for k in counts if k.startswith(("temporal.ode ", "temporal.sde "))]
    assert len(dynamics) == 9 + 3  # ODE orders × designs, SDE designs
    assert counts["temporal.conv1d"] == 826_468
    mlp = 628_324
    assert counts["temporal.ode order=1 design=single"] == mlp + 10_100
    assert counts["temporal.ode order=1 design=composed"] == mlp + 20_200
    assert counts["temporal.ode order=1 design=matched"] == 825_002  # the authors' hidden 978
    assert counts["temporal.ode order=2 design=single"] == mlp + 2 * 10_100 + 10_100  # chain
    assert counts["temporal.ode order=3 design=single"] == mlp + 3 * 10_100 + 10_100
    assert counts["temporal.sde design=single"] == mlp + 2 * 10_100


def test_info_honours_set_for_the_run_and_every_variant():
    out = ndevgan(
        "info",
        "--plugin",
        "backbone.tgan",
        "--plugin",
        "temporal.ode",
        "--set",
        "temporal.ode.pre_mlp=[]",
        "--set",
        "temporal.ode.form=general",
    ).stdout
    assert re.search(r"generator\.temporal\s+10,100", out)
    assert "pre_mlp=[] " in out and "form=general" in out
    counts = _variant_counts(out)
    assert counts["temporal.ode order=1 design=single"] == 10_100
    assert counts["temporal.ode order=2 design=single"] == 30_200  # general: f 200 → 100 + encoder
    # no MLP: the matched width is solved against the original (826,468), within half a unit
    for label, per_unit in (
        ("temporal.ode order=1 design=matched", 201),
        ("temporal.ode order=2 design=matched", 301),
        ("temporal.ode order=3 design=matched", 401),
    ):
        assert abs(counts[label] - 826_468) <= per_unit / 2, (label, counts[label])
    # the tiny preset keeps ndevgan's lighter defaults: no MLP, general form, no adjoint
    out = ndevgan("info", "--plugin", "temporal.ode").stdout
    assert "pre_mlp=[] " in out and "form=general" in out and "adjoint=false" in out


def _fails_cleanly(proc, *fragments):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


def test_unknown_plugin_lists_close_matches(tmp_path):
    runs = tmp_path / "runs"
    proc = ndevgan("run", "--plugin", "temporal.oed", "--set", f"run.out={runs}", check=False)
    _fails_cleanly(proc, "unknown plugin 'temporal.oed'", "'temporal.ode'")
    assert not runs.exists()  # nothing started


def test_bad_config_value_fails_before_any_work(tmp_path):
    runs = tmp_path / "runs"
    proc = ndevgan(
        "run", "--set", "temporal.ode.method=rk5", "--set", f"run.out={runs}", check=False
    )
    _fails_cleanly(proc, "temporal.ode.method", "'rk5'", "dopri5")
    assert not runs.exists()
    bad_file = tmp_path.parent / "bad.toml"
    bad_file.write_text("[run]\niterations = 'many'\n")
    proc = ndevgan("run", "--config", str(bad_file), check=False)
    _fails_cleanly(proc, "run.iterations", "integer", "'many'")
    bad_file.write_text("[run\n")
    proc = ndevgan("run", "--config", str(bad_file), check=False)
    _fails_cleanly(proc, "bad.toml is not valid TOML")


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    proc = ndevgan("sample", str(bad), "--out", str(tmp_path / "x.mp4"), check=False)
    _fails_cleanly(proc, "bad.pt is not a readable checkpoint")
    assert not (tmp_path / "x.mp4").exists()


def test_broken_third_party_plugin_warns_then_is_named_when_selected(fake_dist):
    site = fake_dist(
        "ndevgan-broken", "ndevgan_broken", "import no_such_module_xyz\n", entry_point="broken"
    )
    env = {"PYTHONPATH": str(site)}
    proc = ndevgan("plugins", env=env)
    assert "Warning: skipping plugin 'broken' from package ndevgan-broken 0.1" in proc.stderr
    assert "temporal.ode" in proc.stdout
    proc = ndevgan("run", "--plugin", "temporal.broken", env=env, check=False)
    _fails_cleanly(proc, "ndevgan-broken", "no_such_module_xyz")


def test_duplicate_plugin_and_disable_variable(fake_dist):
    site = fake_dist(
        "ndevgan-dupe",
        "ndevgan_dupe",
        TEMPORAL_SOURCE.format(name="temporal.ode"),
        entry_point="dupe",
    )
    # every command still works (with one warning line); only selecting the contested name fails
    proc = ndevgan("plugins", env={"PYTHONPATH": str(site)})
    assert "Warning: skipping plugin 'dupe' from package ndevgan-dupe" in proc.stderr
    assert "temporal.ode is registered twice" in proc.stderr and "Traceback" not in proc.stderr
    assert ndevgan("--help", env={"PYTHONPATH": str(site)}).returncode == 0
    proc = ndevgan("info", "--set", "run.iterations=1", env={"PYTHONPATH": str(site)}, check=False)
    _fails_cleanly(proc, "temporal.ode is registered twice", "ndevgan_plugins.ode", "ndevgan-dupe")
    proc = ndevgan(
        "plugins", "--json", env={"PYTHONPATH": str(site), "NDEVGAN_DISABLE_PLUGINS": "dupe"}
    )
    assert any(r["name"] == "temporal.ode" for r in json.loads(proc.stdout))


def test_sample_device_errors_name_the_option(tmp_path):
    proc = ndevgan("sample", str(tmp_path), "--device", "tpu", check=False)
    _fails_cleanly(proc, "--device: expected auto, cpu, cuda or cuda:N, got 'tpu'")
    if not torch.cuda.is_available():
        proc = ndevgan("sample", str(tmp_path), "--device", "cuda", check=False)
        _fails_cleanly(proc, "--device is 'cuda' but this machine has no CUDA device")


def test_cli_warning_display_takes_what_the_warnings_module_passes(capsys):
    """warnings.showwarning is called with (message, category, filename, lineno, file, line)."""
    import warnings

    from ndevgan_core import cli as cli_module
    from ndevgan_core.registry import PluginWarning

    previous = warnings.showwarning
    warnings.showwarning = cli_module._show_warning
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = cli_module._show_warning
            warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
            warnings.warn("plugin x failed", PluginWarning, stacklevel=1)
    finally:
        warnings.showwarning = previous
    err = capsys.readouterr().err
    assert "DeprecationWarning: deprecated thing" in err
    assert "Warning: plugin x failed\n" in err


def test_every_command_option_has_help_text():
    import click

    from ndevgan_core.cli import cli

    missing = []

    def walk(command: click.Command, path: str, ctx: click.Context) -> None:
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden and not param.help:
                missing.append(f"{path} {param.opts[0]}")
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                walk(sub, f"{path} {name}", click.Context(sub, parent=ctx, info_name=name))

    walk(cli, "ndevgan", click.Context(cli, info_name="ndevgan"))
    assert missing == []
