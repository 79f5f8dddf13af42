"""A number too large to store must stop the run at the step that makes it, with a clear
reason, and keep the message: a JSON body may carry a 3,000-digit integer (Python reads up to
4,300 digits), and a transform that cubed it used to produce a 9,000-digit result that the run
could not be saved with. Over real HTTP to uvicorn on loopback."""

from __future__ import annotations

import json
from pathlib import Path

from engine.store.base import DeadLetterFilter
from tests.engine.server_support import hook_app, serving

FLOW = """
flow: cubes
trigger:
  webhook:
    path: /hooks/cubes
steps:
  - id: cube
    transform: '{"cube": n * n * n}'
  - id: never
    set: {reached: 'true'}
"""

DIGITS = "7" * 3000


def test_a_3000_digit_integer_cubed_dead_letters_at_the_transform(tmp_path: Path) -> None:
    app = hook_app(tmp_path, {"cubes": FLOW})
    with serving(app) as running:
        response = running.post("/hooks/cubes", '{"n": ' + DIGITS + "}",
                                {"Content-Type": "application/json"})
        assert response.status_code == 202  # the body itself is fine
        (state,) = app.wait_for(response.json()["run_id"], timeout=30)
        small = running.post("/hooks/cubes", json.dumps({"n": 12}),
                             {"Content-Type": "application/json"})
        (fine,) = app.wait_for(small.json()["run_id"], timeout=30)
    assert state.status == "dead_lettered"
    error = state.error
    assert error is not None and error["step"] == "cube" and error["kind"] == "expression"
    assert "Integer out of range" in error["message"] and "(D1011)" in error["message"]
    assert "more than 4,300 digits" in error["message"]
    assert [s["id"] for s in state.steps] == ["cube"]
    (entry,) = app.store.list_dead_letters(DeadLetterFilter(flow="cubes"))
    assert entry.run_id == state.run_id
    assert entry.original["body"] == {"n": int(DIGITS)}  # the message, kept whole
    # the same step on an ordinary number goes on
    assert fine.status == "succeeded" and fine.envelope["body"] == {"cube": 1728}
    assert [s["id"] for s in fine.steps] == ["cube", "never"]
