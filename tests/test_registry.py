"""The plugin system: catalogue, lazy imports, entry points, duplicates, broken and disabled."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings

import attrs
import pytest

import ndevgan_core as nd
from ndevgan_core.errors import PluginError
from ndevgan_core.registry import PluginWarning, Registry, read_catalogue

from .conftest import ROOT, TEMPORAL_SOURCE


@attrs.frozen
class _EmptyConfig:
    pass


def test_catalogue_matches_what_each_builtin_module_registers():
    registry = Registry(entry_points=False, disabled=())
    components = registry.load_all()
    assert {c.name for c in components} == set(read_catalogue())
    for c in components:
        assert c.provider.builtin and c.provider.package == "ndevgan"
        assert c.provider.plugin == read_catalogue()[c.name].module
        assert c.summary  # every built-in says what it is for


def test_selecting_one_builtin_imports_only_its_module():
    code = (
        "import sys; from ndevgan_core.registry import Registry\n"
        "r = Registry(entry_points=False, disabled=())\n"
        "r.get('temporal.ode')\n"
        "print(sorted(m for m in sys.modules if m.startswith('ndevgan_plugins.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['ndevgan_plugins.ode']"


def test_unknown_name_lists_close_matches_and_installed():
    registry = Registry(entry_points=False, disabled=())
    with pytest.raises(PluginError) as err:
        registry.get("temporal.oed")
    msg = str(err.value)
    assert "unknown plugin 'temporal.oed'" in msg and "'temporal.ode'" in msg
    assert "temporal.conv1d" in msg
    with pytest.raises(PluginError, match="not a temporal plugin"):
        registry.get("backbone.tgan", "temporal")


def test_third_party_entry_point_is_discovered(fake_dist, monkeypatch):
    site = fake_dist(
        "ndevgan-wave",
        "ndevgan_wave",
        TEMPORAL_SOURCE.format(name="temporal.wave"),
        entry_point="wave",
    )
    monkeypatch.syspath_prepend(str(site))
    registry = Registry(disabled=())
    comp = registry.get("temporal.wave")
    assert comp.provider.package == "ndevgan-wave" and comp.provider.version == "0.1"
    assert not comp.provider.builtin
    assert "temporal.wave" in registry.names("temporal")


def test_duplicate_name_fails_naming_both_providers(fake_dist, monkeypatch):
    site = fake_dist(
        "ndevgan-dupe",
        "ndevgan_dupe",
        TEMPORAL_SOURCE.format(name="temporal.ode"),
        entry_point="dupe",
    )
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(PluginWarning, match="temporal.ode is registered twice"):
        registry = Registry(disabled=())  # the duplicate is skipped: other names still work
    assert registry.get("temporal.conv1d").provider.builtin
    with pytest.raises(PluginError) as err:
        registry.get("temporal.ode")
    msg = str(err.value)
    assert "temporal.ode is registered twice" in msg
    assert "built-in module ndevgan_plugins.ode" in msg
    assert "'dupe' from package ndevgan-dupe 0.1" in msg
    assert "NDEVGAN_DISABLE_PLUGINS" in msg
    # blocking the plugin (by entry point or package name) resolves the conflict
    for name in ("dupe", "ndevgan-dupe"):
        assert Registry(disabled={name}).get("temporal.ode").provider.builtin


def test_duplicate_between_two_in_process_plugins():
    class A:
        @nd.hookimpl
        def register_components(self, register):
            register("temporal.same", lambda c, s: None, _EmptyConfig)

    class B(A):
        pass

    registry = Registry(entry_points=False, disabled=())
    registry.add_plugin(A())
    with pytest.raises(PluginError, match="temporal.same is registered twice"):
        registry.add_plugin(B())
    assert registry.get("temporal.same")  # the first registration is intact


def test_broken_plugin_warns_and_is_skipped_unless_selected(fake_dist, monkeypatch):
    site = fake_dist(
        "ndevgan-broken",
        "ndevgan_broken",
        "raise ImportError('needs libfoo')\n",
        entry_point="broken",
    )
    monkeypatch.syspath_prepend(str(site))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = Registry(disabled=())
    assert any(
        issubclass(w.category, PluginWarning) and "ndevgan-broken" in str(w.message) for w in caught
    )
    assert registry.get("temporal.ode")  # everything else still works
    with pytest.raises(PluginError) as err:
        registry.get("temporal.broken")
    assert "'broken' from package ndevgan-broken 0.1 failed to load" in str(err.value)
    assert "needs libfoo" in str(err.value)


def test_plugin_that_registers_a_bad_name_is_refused():
    class Bad:
        @nd.hookimpl
        def register_components(self, register):
            register("gizmo.x", lambda c: None, _EmptyConfig)

    registry = Registry(entry_points=False, disabled=())
    with pytest.raises(PluginError, match="kind one of backbone, temporal"):
        registry.add_plugin(Bad())


def test_disable_env_blocks_builtins_and_says_so(monkeypatch):
    monkeypatch.setenv("NDEVGAN_DISABLE_PLUGINS", "temporal.ode, other")
    registry = Registry(entry_points=False)
    assert "temporal.ode" not in registry.names()
    with pytest.raises(PluginError, match="disabled by NDEVGAN_DISABLE_PLUGINS"):
        registry.get("temporal.ode")


COMMAND_SOURCE = """
import attrs
import click
import ndevgan_core as nd

@attrs.frozen
class Config:
    pass

@nd.hookimpl
def register_components(register):
    register("dataset.fakecmd", lambda config, spec: None, Config)

@nd.hookimpl
def register_commands(cli):
    @cli.command("hello")
    def hello():
        click.echo("hi")
"""


def test_builtin_command_modules_load_on_demand_and_also_register_their_components(
    tmp_path, monkeypatch
):
    import click

    from ndevgan_core.registry import CatalogueEntry

    (tmp_path / "fake_cmd_module.py").write_text(COMMAND_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry(entry_points=False, disabled=())
    registry.command_catalogue = {"hello": CatalogueEntry("hello", "fake_cmd_module", "")}
    registry.catalogue["dataset.fakecmd"] = CatalogueEntry("dataset.fakecmd", "fake_cmd_module", "")
    assert "fake_cmd_module" not in sys.modules
    group = click.Group()
    registry.load_command("hello", group)
    assert "hello" in group.commands
    # the module is now a registered plugin: its component resolves without a second import
    assert registry.get("dataset.fakecmd").provider.plugin == "fake_cmd_module"
    registry.command_catalogue = {"broken": CatalogueEntry("broken", "no_such_module_x", "")}
    with pytest.raises(PluginError, match="built-in command 'broken' could not be imported"):
        registry.load_command("broken", group)


def test_catalogue_commands_table_names_importable_modules():
    import importlib

    import click

    for name, entry in read_catalogue("commands").items():
        # built-in command modules live in the plugins package or in the core, import, and
        # add the command the catalogue names
        assert name and entry.module.startswith(("ndevgan_plugins.", "ndevgan_core."))
        module = importlib.import_module(entry.module)
        group = click.Group()
        module.register_commands(cli=group)
        assert name in group.commands, (name, entry.module)


def test_importing_the_core_does_not_load_the_applications():
    code = (
        "import sys, ndevgan_core\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('ndevgan'))))\n"
    )
    loaded = set(subprocess.check_output([sys.executable, "-c", code], text=True).split())
    applications = {
        f"ndevgan_core.{m}"
        for m in (
            "export", "runtime", "sampling", "trainer", "study", "evaluation", "media",
            "distributed", "checkpoint", "cli",
        )
    }  # fmt: skip
    assert not loaded & applications, loaded & applications
    assert "ndevgan_core.contracts" in loaded
    import ndevgan_core as nd

    assert callable(nd.train) and callable(nd.export_onnx)  # still there, on first use


def readme_plugin_source() -> str:
    """The ``my_dynamics.py`` block of the README's "Writing a plugin"."""
    text = (ROOT / "README.md").read_text()
    start = text.index("```python\n# my_dynamics.py\n") + len("```python\n")
    return text[start : text.index("```", start)]


@pytest.mark.parametrize(
    ("backbone", "latents"),
    [("backbone.tgan", (100,)), ("backbone.mocogan", None), ("backbone.tganv2", None)],
)
def test_readme_plugin_example_generates_videos_on_every_backbone(backbone, latents, tmp_path):
    import torch

    from ndevgan_core.runconfig import assemble, resolve

    module_path = tmp_path / "my_dynamics.py"
    module_path.write_text(readme_plugin_source())
    spec = importlib.util.spec_from_file_location("my_dynamics_readme", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    registry = Registry(entry_points=False, disabled=())
    registry.add_plugin(module)
    short = backbone.split(".")[1]
    raw = {
        "plugins": {"backbone": backbone, "temporal": "temporal.spiral"},
        "backbone": {short: {"preset": "tiny"}},
        "temporal": {"spiral": {"scale": 0.5}},
    }
    built = assemble(resolve(raw, registry), registry)
    temporal_spec = built.temporal.spec
    if latents is not None:
        assert temporal_spec.latent_shape == latents
    g = built.gan.generator.eval()
    with torch.no_grad():
        z = g.sample_z(2, torch.Generator().manual_seed(0))
        frames = g.frame_latents(z)
        video = g(z)
    assert frames.shape == (2, temporal_spec.frames, *temporal_spec.latent_shape)
    assert video.shape[:3] == (2, 3, temporal_spec.frames) and video.isfinite().all()


def test_a_temporal_generator_of_the_wrong_output_shape_is_named():
    import torch

    from ndevgan_core.runconfig import assemble, resolve

    class Flat(nd.TemporalGenerator):
        def forward(self, z, t):  # (B, T, D) where TGANv2 asks for feature maps
            return z[:, None].expand(-1, len(t), -1)

    class Provides:
        @nd.hookimpl
        def register_components(self, register):
            register("temporal.flat", lambda config, spec: Flat(spec, "temporal.flat"), Empty)

    @attrs.frozen
    class Empty:
        """No options."""

    registry = Registry(entry_points=False, disabled=())
    registry.add_plugin(Provides())
    raw = {
        "plugins": {"backbone": "backbone.tganv2", "temporal": "temporal.flat"},
        "backbone": {"tganv2": {"preset": "tiny"}},
    }
    g = assemble(resolve(raw, registry), registry).gan.generator
    with pytest.raises(PluginError, match=r"temporal.flat returned frame latents of shape "):
        g(g.sample_z(2, torch.Generator().manual_seed(0)))
