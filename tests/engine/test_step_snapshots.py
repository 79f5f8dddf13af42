"""Step snapshots: bounded, masked by field name and by known secret value, even at the cut."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.loader import FlowSet, Loader
from engine.local import resources_factory, run_to_completion
from engine.problems import Problems
from engine.records import RunState
from engine.refs import Redactor, Secrets
from engine.runner import Runner
from engine.schemas import SchemaStore
from engine.step_snapshots import LIMIT, mask, take, timeline

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "masked"), [
    ('{"password":"p4ss"}', '{"password":"***"}'),
    ('{"Authorization": "Bearer abc"}', '{"Authorization": "***"}'),
    ('{"api_key":"k","apiKey":"k2","x":"k"}', '{"api_key":"***","apiKey":"***","x":"k"}'),
    ('{"refresh_token": 12345, "n": 1}', '{"refresh_token": "***", "n": 1}'),
    ('{"client_secret":"a\\"b"}', '{"client_secret":"***"}'),
    ('{"is_secret": true}', '{"is_secret": "***"}'),
    ('{"token": null}', '{"token": null}'),
    ('{"credentials": {"user": "u", "password": "p"}}',
     '{"credentials": {"user": "u", "password": "***"}}'),
    ('{"note": "my password is short"}', '{"note": "my password is short"}'),
    ('{"password":"cut sho', '{"password":"***"'),  # a value the cut left open
    # a list or an object under a secret's name: every value in it, however deep
    ('{"Authorization": ["Bearer abc", "Basic xyz"], "n": 1}',
     '{"Authorization": ["***", "***"], "n": 1}'),
    ('{"api_keys":["k1",2,true,null],"x":"k"}', '{"api_keys":["***","***","***",null],"x":"k"}'),
    ('{"token": {"value": "abc", "scopes": ["a", {"b": 1}]}, "after": "kept"}',
     '{"token": {"value": "***", "scopes": ["***", {"b": "***"}]}, "after": "kept"}'),
    ('{"secrets": {"a\\"]}": "x]"}, "n": "ok"}', '{"secrets": {"a\\"]}": "***"}, "n": "ok"}'),
    ('{"tokens":["abc","de', '{"tokens":["***","***"'),  # a list the cut left open
    ('{"Set-Cookie": "sid=abc; HttpOnly", "cookie": ["a=1"]}',
     '{"Set-Cookie": "***", "cookie": ["***"]}'),
])
def test_fields_named_like_secrets_are_masked(text: str, masked: str) -> None:
    assert mask(text) == masked


def test_known_secret_values_are_masked_anywhere() -> None:
    redactor = Redactor()
    redactor.add("tok-9f8e7d6c")
    snap = take({"echo": "Bearer tok-9f8e7d6c", "n": 1}, redactor)
    assert snap == {"json": '{"echo":"Bearer ***","n":1}', "size": 36, "truncated": False,
                    "to": "body"}


def test_a_large_value_keeps_its_first_bytes_and_its_size() -> None:
    body = {"lines": [{"sku": f"S{i}", "note": "é" * 10} for i in range(1000)]}
    snap = take(body, None, limit=100)
    whole = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    assert snap["truncated"] and snap["size"] == len(whole)
    assert len(snap["json"]) == 100 and whole.decode().startswith(snap["json"])


def test_a_secret_across_the_cut_is_masked_whole() -> None:
    redactor = Redactor()
    secret = "s3cr3t-value-0123456789"
    redactor.add(secret)
    # the secret starts at byte 93 of the JSON and ends past the 100 kept
    cut = take({"pad": "x" * 75, "echo": secret}, redactor, limit=100)
    assert cut["truncated"] and cut["json"].endswith('","echo":"***"}')
    assert "s3cr3t" not in cut["json"]


def test_values_json_cannot_hold_exactly_are_still_shown() -> None:
    assert take({"n": 2**70}, None)["json"] == '{"n": 1180591620717411303424}'
    assert take({1: b"raw"}, None)["json"] == '{"1":"b\'raw\'"}'


def test_the_timeline_derives_inputs_from_outputs() -> None:
    original = {"json": "{}", "size": 2, "truncated": False, "to": "body"}
    a = {"json": '{"a":1}', "size": 7, "truncated": False, "to": "body"}
    v = {"json": '"x"', "size": 3, "truncated": False, "to": "vars.x"}
    steps = [{"id": "a", "status": "succeeded", "output": a},
             {"id": "set", "status": "succeeded", "output": v},
             {"id": "same", "status": "succeeded", "output": {"unchanged": True}},
             {"id": "boom", "status": "failed"}]
    seen = timeline(steps, original)
    assert seen[0] == {"input": original, "output": a}
    assert seen[1] == {"input": a, "output": v}  # a variable: the body goes on unchanged
    assert seen[2] == {"input": a, "output": a, "unchanged": True}
    assert seen[3] == {"input": a, "output": None}


def test_a_step_without_a_snapshot_leaves_what_follows_unknown() -> None:
    steps = [{"id": "a", "status": "succeeded"}, {"id": "boom", "status": "failed"}]
    assert timeline(steps, {"json": "{}", "size": 2, "truncated": False, "to": "body"}) == [
        None, None]


# -- through the runner ------------------------------------------------------------------------
CHAIN = """
flow: chain
steps:
  - id: first
    transform: '{"n": n, "stage": "first"}'
  - id: keep
    filter: 'true'
  - id: second
    transform: '{"n": n, "stage": "second"}'
  - id: remember
    transform: 'n * 10'
    output: vars.tens
  - id: third
    transform: '{"n": n, "stage": "third"}'
"""


def run_chain(body: Any, snapshots: int = LIMIT) -> RunState:
    secrets = Secrets(environ={})
    loader = Loader(schemas=SchemaStore(ROOT / "schemas"), secrets=secrets)
    flow, problems = loader.load_file("chain.yaml", CHAIN.encode("utf-8"))
    assert flow is not None, [str(p) for p in problems]
    runner = Runner(resources_factory(secrets), secrets.redactor, snapshots=snapshots)
    return run_to_completion(FlowSet({flow.id: flow}, Problems()), flow, body, None,
                             runner=runner, sleep=lambda s: None)[0]


def test_each_new_body_is_encoded_once_and_the_last_is_the_envelopes() -> None:
    state = run_chain({"n": 7, "password": "hunter2-long"})
    assert state.status == "succeeded"
    outputs = {s["id"]: s["output"] for s in state.steps}
    assert outputs["first"]["json"] == '{"n":7,"stage":"first"}'
    assert outputs["keep"] == {"unchanged": True}
    assert outputs["second"]["json"] == '{"n":7,"stage":"second"}'
    assert outputs["remember"]["json"] == "70" and outputs["remember"]["to"] == "vars.tens"
    assert outputs["third"] == {"ref": "body"}  # the envelope holds it: not kept twice
    original = take(state.original["body"], None)
    body = take(state.envelope["body"], None)
    seen = timeline(state.steps, original, body)
    assert '"***"' in seen[0]["input"]["json"]  # the password, masked by name
    assert [json.loads(s["output"]["json"]) for s in seen] == [
        {"n": 7, "stage": "first"}, {"n": 7, "stage": "first"}, {"n": 7, "stage": "second"},
        70, {"n": 7, "stage": "third"}]
    assert seen[4]["input"] == outputs["second"]  # past the variable: the body goes on


def test_snapshots_off_record_no_output() -> None:
    state = run_chain({"n": 1}, snapshots=0)
    assert state.status == "succeeded" and all("output" not in s for s in state.steps)
