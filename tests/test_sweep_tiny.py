"""tools/sweep_tiny.py: a trial whose command fails is one line, and the sweep goes on."""

import sys

import pytest

from ndevgan_core.errors import ConfigError
from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import demo_config, raw_config, resolve

from .conftest import load_tool


@pytest.fixture()
def tool():
    """tools/sweep_tiny.py as a fresh module (its list of failed trials empty)."""
    return load_tool("sweep_tiny")


def test_a_failing_command_is_recorded_in_one_line_with_its_last_line_of_output(tool, capsys):
    fail = [sys.executable, "-c", "import sys; print('working'); sys.exit('Error: bad option')"]
    assert not tool.succeeded(fail, {}, "demo-s0", "ndevgan run")
    line = "demo-s0: ndevgan run failed (exit 1): Error: bad option"
    assert [line] == tool.FAILED
    assert capsys.readouterr().out == line + "\n"
    assert tool.succeeded([sys.executable, "-c", "pass"], {}, "demo-s1", "ndevgan run")
    assert [line] == tool.FAILED


def test_every_variant_is_a_valid_run_on_top_of_the_demo(tool):
    """Each variant's settings resolve against the registry (a renamed or mistyped option, or
    a value out of range, is refused here rather than after a sweep's first trial)."""
    registry = Registry(entry_points=False)
    for name, sets in tool.VARIANTS.items():
        raw = raw_config(overrides=[*sets, "run.seed=1"], base=demo_config())
        config = resolve(raw, registry)
        assert config.run.seed == 1, name
        # the variants measured before the demo weighed edges run as they were measured
        _, tgan = config.component("backbone")
        if not name.startswith("demo") and not any("critic_edges" in s for s in sets):
            assert tgan.critic_edges == 0 and config.run.lr_decay in (0, 0.5), name
            assert config.run.lr_decay == 0 or "run.lr_decay=0.5" in sets, name
    with pytest.raises(ConfigError, match="critic_downsample"):
        resolve(
            raw_config(overrides=["backbone.tgan.critic_downsample=avg"], base=demo_config()),
            registry,
        )
