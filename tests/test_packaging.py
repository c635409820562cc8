"""Installation: a regular (non-editable) install ships registry.toml and every built-in
plugin, and a third-party plugin package installed beside ndevgan is found and trains."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import FAST, ROOT, ndevgan


def pip_install_target(source: Path, target: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
    )


def test_regular_install_ships_registry_and_plugins(tmp_path):
    target = tmp_path / "site"
    pip_install_target(ROOT, target)
    # the catalogue is the plugins package's data, found through its entry point
    assert (target / "ndevgan_plugins" / "registry.toml").is_file()
    assert not (target / "ndevgan_plugins" / "registry.toml").is_symlink()
    assert not (target / "ndevgan_core" / "registry.toml").exists()
    assert (target / "ndevgan_core" / "demo.toml").is_file()
    # the shapes classifier the metrics score the demo dataset with
    assert (target / "ndevgan_plugins" / "weights" / "shapes_c3d.pt").is_file()
    for module in ("tgan", "ode", "shapes", "shapes_render"):
        assert (target / "ndevgan_plugins" / f"{module}.py").is_file()
    code = (
        "import json, ndevgan_core, ndevgan_plugins.ode as m; "
        "from ndevgan_core.cli import plugin_records; "
        "print(json.dumps([ndevgan_core.__file__, m.__file__, "
        "[r['name'] for r in plugin_records(ndevgan_core.default_registry())]]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    core_file, plugin_file, names = json.loads(out)
    assert core_file.startswith(str(target)) and plugin_file.startswith(str(target))
    assert {"backbone.tgan", "temporal.ode", "temporal.conv1d", "dataset.shapes"} <= set(names)


def test_third_party_package_is_listed_and_trains(tmp_path):
    target = tmp_path / "site"
    pip_install_target(ROOT / "tests" / "plugins" / "ndevgan-spiral", target)
    env = {"PYTHONPATH": str(target)}
    records = json.loads(ndevgan("plugins", "--json", env=env).stdout)
    spiral = next(r for r in records if r["name"] == "temporal.spiral")
    assert (spiral["package"], spiral["version"], spiral["builtin"]) == (
        "ndevgan-spiral",
        "0.1.0",
        False,
    )
    assert {o["name"] for o in spiral["options"]} >= {"scale", "method"}
    assert "temporal.spiral" in ndevgan("plugins", env=env).stdout

    ndevgan(
        "run",
        "--plugin",
        "temporal.spiral",
        *FAST,
        "--set",
        "run.iterations=2",
        "--set",
        f"run.out={tmp_path}",
        "--set",
        "run.name=spiral",
        env=env,
    )
    run_dir = tmp_path / "spiral"
    assert 'temporal = "temporal.spiral"' in (run_dir / "config.toml").read_text()
    assert (run_dir / "checkpoints" / "step-00000002.pt").is_file()
    assert (run_dir / "samples" / "step-00000002.mp4").is_file()
