"""Configuration: validation messages, presets, overrides, TOML round trips, resolution."""

from __future__ import annotations

import tomllib

import pytest

from ndevgan_core.config import build_config, dump_toml, parse_override
from ndevgan_core.errors import ConfigError
from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import RunConfig, raw_config, resolve
from ndevgan_plugins.ode import ODEConfig
from ndevgan_plugins.tgan import TGANConfig


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(entry_points=False, disabled=())


def test_unknown_key_names_it_suggests_and_lists_allowed():
    with pytest.raises(ConfigError) as err:
        build_config(ODEConfig, {"methd": "euler"}, "temporal.ode")
    msg = str(err.value)
    assert "temporal.ode.methd" in msg and "'method'" in msg and "Allowed:" in msg


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        ({"method": "rk5"}, ["temporal.ode.method", "'rk5'", "dopri5"]),
        ({"step_size": -0.1}, ["temporal.ode.step_size", "-0.1", "> 0"]),
        ({"adjoint": "yes"}, ["temporal.ode.adjoint", "true or false", "'yes'"]),
        ({"hidden": 1.5}, ["temporal.ode.hidden", "integer", "1.5"]),
        ({"activation": "gelu"}, ["temporal.ode.activation", "'tanh'", "'gelu'"]),
    ],
)
def test_bad_values_name_option_value_and_allowed(data, fragments):
    with pytest.raises(ConfigError) as err:
        build_config(ODEConfig, data, "temporal.ode")
    for fragment in fragments:
        assert fragment in str(err.value)


def test_config_is_frozen_and_coerces_ints_to_floats():
    cfg = build_config(ODEConfig, {"step_size": 1, "rtol": 1e-5}, "temporal.ode")
    assert cfg.step_size == 1.0 and isinstance(cfg.step_size, float)
    with pytest.raises(AttributeError):
        cfg.method = "euler"  # type: ignore[misc]


def test_preset_supplies_defaults_and_explicit_keys_win():
    tiny = build_config(TGANConfig, {"preset": "tiny"}, "backbone.tgan")
    assert (tiny.size, tiny.batch_size) == (32, 8)
    mixed = build_config(TGANConfig, {"preset": "tiny", "batch_size": 2}, "backbone.tgan")
    assert (mixed.size, mixed.batch_size) == (32, 2)
    paper = build_config(TGANConfig, {}, "backbone.tgan")
    assert (paper.size, paper.batch_size, paper.lr) == (64, 32, 5e-5)
    with pytest.raises(ConfigError, match="preset.*'huge'"):
        build_config(TGANConfig, {"preset": "huge"}, "backbone.tgan")


def test_cross_field_validation_names_the_option():
    with pytest.raises(ConfigError, match="frames.*at least 16"):
        build_config(TGANConfig, {"frames": 8}, "backbone.tgan")


def test_parse_override_types():
    assert parse_override("run.iterations=100") == (["run", "iterations"], 100)
    assert parse_override("temporal.ode.method=dopri5") == (["temporal", "ode", "method"], "dopri5")
    assert parse_override("temporal.ode.adjoint=true")[1] is True
    assert parse_override('run.loggers=["a"]')[1] == ["a"]
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("iterations")


def test_dump_toml_round_trips_resolved_config(registry):
    config = resolve(
        raw_config(
            overrides=["temporal.ode.step_size=0.25"],
            base={"plugins": {"temporal": "temporal.ode"}},
        ),
        registry,
    )
    tree = config.to_dict()
    text = dump_toml(tree)
    back = tomllib.loads(text)
    assert back["temporal"]["ode"]["step_size"] == 0.25
    assert back["backbone"]["tgan"] == tree["backbone"]["tgan"]
    # None options are written as comments and come back as their default
    again = resolve(back, registry)
    assert again.to_dict() == tree


def test_resolve_defaults_to_backbone_original_temporal(registry):
    config = resolve({}, registry)
    assert config.plugins.temporal == "temporal.conv1d"
    assert config.plugins.backbone == "backbone.tgan"
    assert config.plugins.dataset == "dataset.shapes"


def test_resolve_accepts_short_names(registry):
    config = resolve({"plugins": {"temporal": "ode"}}, registry)
    assert config.plugins.temporal == "temporal.ode"
    assert "temporal.ode" in config.components


def test_resolve_rejects_unknown_section_and_plugin_section(registry):
    with pytest.raises(ConfigError, match=r"unknown section \[rnu\].*'run'"):
        resolve({"rnu": {}}, registry)
    with pytest.raises(ConfigError, match=r"\[temporal.oed\].*'temporal.ode'"):
        resolve({"temporal": {"oed": {"method": "euler"}}}, registry)


def test_run_config_device_validation():
    with pytest.raises(ConfigError, match="device"):
        build_config(RunConfig, {"device": "tpu"}, "run")
    with pytest.raises(ConfigError, match="run.iterations"):
        build_config(RunConfig, {"iterations": 0}, "run")
