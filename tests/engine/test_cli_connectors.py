"""`flowrun connectors` and disabled plugins, against a real third-party distribution.

The fake distribution ``fakeplugin`` is written to a temporary folder (a ``.dist-info`` with
METADATA and entry_points.txt beside its modules) and put on PYTHONPATH of a real ``flowrun``
subprocess, so the entry points are found by importlib.metadata exactly as after
``pip install fakeplugin``: one plugin works, the others are broken in each way a plugin can be.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from engine import DISTRIBUTION

ROOT = Path(__file__).resolve().parents[2]

METADATA = """\
Metadata-Version: 2.1
Name: fakeplugin
Version: 0.3.1
Provides-Extra: fancy
Requires-Dist: requests
Requires-Dist: gone-core-lib
Requires-Dist: Nonexistent-Lib-XYZ>=1.0; extra == "fancy"
"""

ENTRY_POINTS = """\
[flowrunner.connectors]
fancy = fakeplugin_fancy:CONNECTOR

[flowrunner.steps]
greet = fakeplugin_good:STEP
notakind = fakeplugin_good:NOT_A_KIND
typo = fakeplugin_missing_module:STEP
undeclared = fakeplugin_undeclared:STEP
corestep = fakeplugin_core:STEP
inner = fakepkg.step:STEP

[flowrunner.signatures]
brokensig = fakeplugin_good:NOPE
"""

GOOD = '''\
"""A step kind from a third party: one module, one config model, one entry-point line."""
from pydantic import Field

from engine.dsl.base import Model
from engine.types import StepKind, result


class Greet(Model):
    name: str = Field(description="Who to greet.")


def build(config, ctx):
    def greet(envelope, resources):
        return result({"greeting": f"hello {config.name}", "was": envelope.body})
    return greet


STEP = StepKind(name="greet", config=Greet, build=build, description="Greet someone. Really.")
NOT_A_KIND = 42
'''

MODULES = {
    "fakeplugin_good.py": GOOD,
    "fakeplugin_fancy.py": "import nonexistent_lib_xyz  # the 'fancy' extra\n",
    "fakeplugin_undeclared.py": "import totally_unknown_mod\n",
    "fakeplugin_core.py": "import gone_core_lib\n",
    "fakepkg/__init__.py": "",
    "fakepkg/step.py": "import fakepkg.helpers  # a module the package forgot to ship\n",
}


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    info = site / "fakeplugin-0.3.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(METADATA)
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    for name, text in MODULES.items():
        (site / name).parent.mkdir(exist_ok=True)
        (site / name).write_text(text)
    return site


def flowrun(*args: str, site: Path | None = None,
            cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(p) for p in (site, ROOT) if p is not None])}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


@functools.cache
def listing(site: Path | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """`flowrun connectors --json`, once per installation (each start costs seconds)."""
    done = flowrun("connectors", "--json", site=site)
    assert done.returncode == 0, done.stderr
    return {(p["kind"], p["name"]): p for p in json.loads(done.stdout)}


def test_built_ins_are_listed_enabled_from_their_entry_points() -> None:
    found = listing()
    http = found[("connector", "http")]
    assert (http["enabled"], http["target"]) == (True, "connectors.http:CONNECTOR")
    # the name this checkout is installed under: flowrunner-ipaas (flowrunner before the rename)
    assert http["distribution"] in (DISTRIBUTION, "flowrunner")
    assert http["description"].startswith("An HTTP request")
    for kind, name in [("step", "transform"), ("step", "x12"), ("signature", "shopify"),
                       ("signature", "standard_webhooks")]:
        assert found[(kind, name)]["enabled"], found[(kind, name)]
    assert all(p["reason"] is None for p in found.values() if p["enabled"])


@pytest.mark.parametrize(("kind", "name", "reason"), [
    ("connector", "fancy", "needs Nonexistent-Lib-XYZ — install fakeplugin[fancy]"),
    ("step", "corestep", "needs gone-core-lib — reinstall fakeplugin, which depends on it"),
    ("step", "undeclared",
     "needs module 'totally_unknown_mod', which fakeplugin does not declare — pip install it"),
    ("step", "typo",
     "the entry point names module 'fakeplugin_missing_module', which does not exist"),
    ("step", "notakind", "entry point does not name a StepKind called 'notakind'"),
    ("step", "inner", "fakepkg.step imports 'fakepkg.helpers', which does not exist"),
    ("signature", "brokensig", "cannot be loaded: AttributeError: module 'fakeplugin_good' "
                               "has no attribute 'NOPE'"),
])
def test_a_broken_plugin_is_disabled_with_the_reason(plugin_path: Path, kind: str, name: str,
                                                     reason: str) -> None:
    plugin = listing(plugin_path)[(kind, name)]
    assert (plugin["enabled"], plugin["reason"]) == (False, reason)
    assert (plugin["distribution"], plugin["version"]) == ("fakeplugin", "0.3.1")


def test_broken_plugins_leave_the_others_working(plugin_path: Path) -> None:
    found = listing(plugin_path)
    greet = found[("step", "greet")]
    assert (greet["enabled"], greet["description"]) == (True, "Greet someone. Really.")
    assert found[("connector", "http")]["enabled"] and found[("step", "transform")]["enabled"]


def test_text_listing_names_groups_status_and_origin(plugin_path: Path) -> None:
    done = flowrun("connectors", site=plugin_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Connectors (call: {NAME: ...})"
    fancy = next(line for line in lines if line.strip().startswith("fancy "))
    assert fancy.split(None, 1)[1] == ("disabled: needs Nonexistent-Lib-XYZ — install "
                                       "fakeplugin[fancy]  [fakeplugin 0.3.1]")
    greet = next(line for line in lines if line.strip().startswith("greet "))
    assert greet.split(None, 1)[1] == "enabled   [fakeplugin 0.3.1]  Greet someone"
    http = next(line for line in lines if line.strip().startswith("http "))
    assert "[" not in http  # built-ins carry no origin
    assert lines[-1] == f"{sum(1 for p in listing(plugin_path).values() if p['enabled'])} " \
                        "enabled, 7 disabled"


def test_a_flow_uses_the_plugin_step_and_names_the_disabled_one(plugin_path: Path,
                                                                 tmp_path: Path) -> None:
    flow = tmp_path / "flows" / "hello.yaml"
    flow.parent.mkdir()
    flow.write_text(textwrap.dedent("""\
        flow: hello
        steps:
          - id: hi
            greet: {name: Ada}
        """))
    message = tmp_path / "in.json"
    message.write_text('{"n": 1}')
    done = flowrun("run", str(flow), "--input", str(message), site=plugin_path, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout[:done.stdout.rindex("}") + 1])
    assert (run["status"], run["envelope"]["body"]) == (
        "succeeded", {"greeting": "hello Ada", "was": {"n": 1}})

    flow.write_text(textwrap.dedent("""\
        flow: hello
        steps:
          - id: fancy_call
            call:
              fancy: {url: "http://127.0.0.1:9/x"}
        """))
    done = flowrun("validate", str(flow), site=plugin_path, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        f"{flow}:4:5 steps[0].call: connector 'fancy' is disabled: needs Nonexistent-Lib-XYZ — "
        "install fakeplugin[fancy]")
