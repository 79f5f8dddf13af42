"""docs/install.md shows what flowrunner does: its flow is the one `flowrun init` writes and
validates, its configuration snippets parse, and every command it names exists."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import click

from engine.cli import main
from engine.loader import Loader
from engine.refs import Secrets
from engine.scaffold import STARTER
from engine.schemas import SchemaStore
from engine.shipped import schemas_dir
from tests.conftest import ROOT

DOC = (ROOT / "docs" / "install.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.S)


def test_the_example_flow_is_the_one_init_writes_and_it_validates(tmp_path: Path) -> None:
    [flow] = [b for b in _blocks("yaml") if b.startswith("flow:")]
    written = (STARTER / "flows" / "web-order-to-erp.yaml").read_text(encoding="utf-8")
    assert written.split("\n", 1)[1] == flow  # all but the editor-schema comment line
    (tmp_path / "web-order-to-erp.yaml").write_text(flow, encoding="utf-8")
    loaded = Loader(schemas=SchemaStore(schemas_dir()), secrets=Secrets(environ={})
                    ).load_paths([tmp_path])
    assert loaded.ok and list(loaded.flows) == ["web-order-to-erp"], loaded.problems


def test_the_configuration_snippets_parse() -> None:
    [toml] = _blocks("toml")
    assert tomllib.loads(toml)["tool"]["pytest"]["ini_options"] == {"flowrun_tests": True}
    [python] = _blocks("python")
    settings: dict[str, object] = {}
    exec(compile(python, "celeryconfig.py", "exec"), settings)
    assert settings["broker_transport_options"] == {"visibility_timeout": 900}


def test_every_flowrun_command_the_doc_names_exists() -> None:
    named = set(re.findall(r"flowrun ((?:[a-z]+)(?: [a-z]+)?)", DOC))
    assert {"init shop", "poll supplier", "dlq replay", "worker", "test"} <= named
    for words in named:
        command: click.Command = main
        for word in words.split():
            if not isinstance(command, click.Group) or word not in command.commands:
                break  # an argument (init shop, poll supplier-po-ack-poll)
            command = command.commands[word]
        assert command is not main, f"`flowrun {words}` is not a command"
