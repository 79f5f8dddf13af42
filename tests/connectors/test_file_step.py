"""The ``file`` step from YAML through the real loader: atomic local writes and reads.

Real files in tmp_path; the folder comes from ``${env:...}`` and templates, as in a shipped flow.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from engine.loader import FlowSet, Loader
from engine.local import resources_factory, run_to_completion
from engine.problems import Problems
from engine.records import RunState
from engine.refs import Secrets
from engine.runner import Runner


def load(text: str) -> tuple[Any, list[str]]:
    loader = Loader(secrets=Secrets(environ={}))
    flow, problems = loader.load_file("t.yaml", text.encode("utf-8"))
    return flow, [f"{p.line}:{p.column} {p.message}" for p in problems if p.severity == "error"]


def run(step: str, body: Any, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> RunState:
    monkeypatch.setenv("OUTBOX", str(outbox))
    flow, problems = load(f"flow: t\nsteps:\n  - id: keep\n    file: {step}\n")
    assert flow is not None, problems
    secrets = Secrets(environ={})
    runner = Runner(resources_factory(secrets), secrets.redactor)
    return run_to_completion(FlowSet({flow.id: flow}, Problems()), flow, body, {},
                             runner=runner, sleep=lambda s: None)[0]


WRITE = ("{write: {dir: '${env:OUTBOX}/{{ partner }}', name: 'PO_{{ po }}.edi', "
         "content: edi%s}}")


def test_write_renders_folder_and_name_creates_the_folder_and_keeps_the_body(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"partner": "acme", "po": "4711", "edi": "ST*850*0001~"}
    state = run(WRITE % "", body, tmp_path / "out", monkeypatch)
    assert state.status == "succeeded", state.error
    written = tmp_path / "out" / "acme" / "PO_4711.edi"
    assert written.read_text(encoding="utf-8") == "ST*850*0001~"
    assert state.envelope["body"] == body
    assert os.listdir(written.parent) == ["PO_4711.edi"]  # no temp file left behind


def test_the_final_name_never_shows_a_partial_file(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out" / "acme" / "PO_1.edi"
    target.parent.mkdir(parents=True)
    target.write_text("old", encoding="utf-8")
    seen: set[str] = set()
    stop = threading.Event()

    def watch() -> None:  # a partner's pick-up job reading the file over and over
        while not stop.is_set():
            seen.add(target.read_text(encoding="utf-8"))

    watcher = threading.Thread(target=watch)
    watcher.start()
    new = "N" * 5_000_000
    try:
        state = run(WRITE % "", {"partner": "acme", "po": "1", "edi": new}, tmp_path / "out",
                    monkeypatch)
    finally:
        stop.set()
        watcher.join()
    assert state.status == "succeeded", state.error
    assert seen <= {"old", new}  # the old file or the whole new one, never a part
    assert target.read_text(encoding="utf-8") == new


@pytest.mark.parametrize(("policy", "names"), [
    ("replace", ["PO_1.edi"]),
    ("unique", ["PO_1.1.edi", "PO_1.2.edi", "PO_1.edi"]),
])
def test_overwrite_policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str,
                            names: list[str]) -> None:
    for n in range(3):
        state = run(WRITE % f", overwrite: {policy}", {"partner": "a", "po": "1", "edi": f"v{n}"},
                    tmp_path / "out", monkeypatch)
        assert state.status == "succeeded", state.error
    folder = tmp_path / "out" / "a"
    assert sorted(os.listdir(folder)) == names
    assert (folder / names[-1]).read_text(encoding="utf-8") == ("v2" if policy == "replace"
                                                                else "v0")


def test_overwrite_fail_keeps_the_file_and_fails_the_step(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"partner": "a", "po": "1", "edi": "first"}
    assert run(WRITE % ", overwrite: fail", body, tmp_path / "out",
               monkeypatch).status == "succeeded"
    state = run(WRITE % ", overwrite: fail", {**body, "edi": "second"}, tmp_path / "out",
                monkeypatch)
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "exists"
    assert (tmp_path / "out" / "a" / "PO_1.edi").read_text(encoding="utf-8") == "first"
    assert os.listdir(tmp_path / "out" / "a") == ["PO_1.edi"]


@pytest.mark.parametrize(("body", "message"), [
    ({"partner": "a", "po": "../../x", "edi": "e"},
     "file.write.name: 'PO_../../x.edi' is not a file name (no folders, not empty)"),
    ({"partner": "../..", "po": "1", "edi": "e"}, "leaves its folder ('..'); refused"),
    ({"partner": "a", "po": "1", "edi": "Grüße"},
     "file.write.content: character 'ü' at position 2 cannot be written in ascii"),
])
def test_bad_values_name_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   body: dict[str, str], message: str) -> None:
    state = run(WRITE % ", encoding: ascii", body, tmp_path / "out", monkeypatch)
    assert state.status == "dead_lettered"
    assert state.error is not None and message in state.error["message"]
    assert state.error["message"].startswith("step 'keep' (t.yaml:3): file.write.")
    assert not list(tmp_path.rglob("*.edi"))


def test_read_puts_the_text_into_the_body(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "rates.csv").write_text("zone;eur\n1;4,90\n", encoding="utf-8")
    state = run("{read: {path: '${env:OUTBOX}/{{ file }}'}}", {"file": "rates.csv"},
                tmp_path / "out", monkeypatch)
    assert state.status == "succeeded", state.error
    assert state.envelope["body"] == "zone;eur\n1;4,90\n"
    missing = run("{read: {path: '${env:OUTBOX}/none.csv'}}", {}, tmp_path / "out",
                  monkeypatch)
    assert missing.error is not None and missing.error["kind"] == "not_found"


def test_write_and_read_together_are_a_load_error() -> None:
    flow, problems = load("flow: t\nsteps:\n  - id: keep\n    file: {read: {path: a}, "
                          "write: {dir: b, name: c}}\n")
    assert flow is None
    assert problems == ["4:11 give exactly one of 'write:' or 'read:'"]
