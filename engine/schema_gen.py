"""Generate ``schemas/flow.schema.json`` from the DSL models (the models are the one source)."""

from __future__ import annotations

import json
from typing import Any

from engine.dsl.flow import flow_model

SCHEMA_ID = "https://flowrunner.dev/schemas/flow.schema.json"


def flow_schema() -> dict[str, Any]:
    schema = flow_model().model_json_schema(by_alias=True)
    return {**schema, "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "flowrunner flow",
            "description": "A flowrunner flow file: a trigger and a chain of steps."}


def flow_schema_text() -> str:
    return json.dumps(flow_schema(), indent=2, ensure_ascii=False) + "\n"
