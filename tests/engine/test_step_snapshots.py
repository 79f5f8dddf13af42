"""Step snapshots: bounded, masked by field name and by known secret value, even at the cut."""

from __future__ import annotations

import json

import pytest

from engine.refs import Redactor
from engine.step_snapshots import mask, take, timeline


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
