"""Scenario 7: forged, replayed, expired and retired-secret webhooks are never accepted.

One flow per signature scheme (Shopify, Stripe, GitHub, Standard Webhooks, generic HMAC with a
timestamp), served over real HTTP by the webhook server in this process, its clock moved by the
test. Per scheme, one genuine delivery is accepted (so the refusals below are not an accident
of the set-up); then a tampered body, a wrong secret, missing headers, a timestamp too old or
too far ahead, the secret retired by the last rotation, and the genuine request replayed after
its tolerance window are all answered 401. A scheme without a timestamp (Shopify, GitHub)
cannot tell a replay by its signature; its replay is caught by the idempotency key (200
duplicate) and starts no run either. Nothing refused is recorded or reaches the downstream.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors.signatures import Scheme, load_schemes
from tests.engine.server_support import SECRETS, hook_app, serving
from tests.reliability.conftest import Downstream, Ledger, report, settle

pytestmark = pytest.mark.integration

TOLERANCE = 300
T0 = 1_790_000_000.0
RETIRED = {"SHOP": "shop-secret-2024", "STRIPE": "whsec_retired_2024",
           "GITHUB": "retired github secret", "STDWH": "whsec_cmV0aXJlZC1zZWNyZXQtMjAyNA==",
           "GENERIC": "retired-generic-secret"}
WRONG = {"STDWH": "whsec_d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA=="}

#: scheme → (secret name, options, idempotency key expression, has a timestamp)
SCHEMES: dict[str, tuple[str, dict[str, Any], str, bool]] = {
    "shopify": ("SHOP", {}, '$headers."x-shopify-webhook-id"', False),
    "stripe": ("STRIPE", {"tolerance_seconds": TOLERANCE}, "id", True),
    "github": ("GITHUB", {}, '$headers."x-github-delivery"', False),
    "standard_webhooks": ("STDWH", {"tolerance_seconds": TOLERANCE},
                          '$headers."webhook-id"', True),
    "hmac": ("GENERIC", {"header": "X-Signature", "encoding": "base64",
                         "payload_template": "{timestamp}.{body}",
                         "timestamp_header": "X-Timestamp", "tolerance_seconds": TOLERANCE},
             "id", True),
}


def flow(scheme: str) -> str:
    secret, options, key, _ = SCHEMES[scheme]
    spec = json.dumps({"scheme": scheme, "secret": f"${{secret:{secret}}}", **options})
    return f"""
flow: signed-{scheme.replace("_", "-")}
trigger:
  webhook:
    path: /hooks/{scheme}
    signature: {spec}
    idempotency_key: '{key}'
steps:
  - id: deliver
    call:
      http: {{method: POST, url: "${{env:DOWNSTREAM_URL}}/signed"}}
    output: vars.receipt
"""


class Sender:
    """Builds the requests of one scheme: genuine, or spoiled in one way."""

    def __init__(self, scheme: Scheme[Any], name: str):
        self.scheme, self.name = scheme, name
        secret, options, _, self.timestamped = SCHEMES[name]
        self.config = scheme.config.model_validate(options)
        self.secret = SECRETS[secret]
        self.retired, self.wrong = RETIRED[secret], WRONG.get(secret, "not-the-secret")
        self.n = 0

    def request(self, *, secret: str | None = None, at: float = T0,
                ) -> tuple[bytes, dict[str, str]]:
        self.n += 1
        ident = f"{self.name}-{self.n}"
        body = json.dumps({"id": ident, "message": ident}).encode()
        headers = self.scheme.sign(self.config, body, secret or self.secret, at)
        headers.update({"Content-Type": "application/json", "X-Shopify-Webhook-Id": ident,
                        "X-GitHub-Delivery": ident})
        return body, headers

    def spoiled(self) -> dict[str, tuple[bytes, dict[str, str]]]:
        body, headers = self.request()
        cases = {
            "tampered body": (body.replace(b'"message"', b'"massage"'), headers),
            "wrong secret": self.request(secret=self.wrong),
            "no signature": (self.request()[0], {"Content-Type": "application/json"}),
            "retired secret": self.request(secret=self.retired),
        }
        if self.timestamped:
            cases["expired"] = self.request(at=T0 - TOLERANCE - 60)
            cases["from the future"] = self.request(at=T0 + TOLERANCE + 60)
        return cases


def test_no_forged_replayed_expired_or_retired_webhook_is_accepted(
        tmp_path: Path, downstream: Downstream, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOWNSTREAM_URL", downstream.url)
    app = hook_app(tmp_path, {f"signed-{s}": flow(s) for s in SCHEMES})
    now = [T0]
    schemes = load_schemes()
    answers: dict[tuple[str, str], int] = {}
    genuine: dict[str, tuple[bytes, dict[str, str]]] = {}
    with serving(app, clock=lambda: now[0]) as server:

        def post(name: str, case: str, request: tuple[bytes, dict[str, str]]) -> None:
            answer: requests.Response = server.post(f"/hooks/{name}", *request)
            answers[(name, case)] = answer.status_code
            assert "Traceback" not in answer.text

        for name in SCHEMES:
            sender = Sender(schemes[name], name)
            genuine[name] = sender.request()
            post(name, "genuine", genuine[name])
            for case, request in sender.spoiled().items():
                post(name, case, request)
        now[0] = T0 + TOLERANCE + 1  # the captured genuine requests are sent again, later
        for name, request in genuine.items():
            post(name, "replayed", request)
        settle(lambda: sum(app.store.count_runs().values()) == len(SCHEMES) and
               app.store.count_runs().get("succeeded", 0) == len(SCHEMES), 30)
        rejected = server.counter("signature_rejected")
    counts = app.store.count_runs()
    ledger = Ledger.of(downstream, "/signed")
    report("signatures", schemes=len(SCHEMES), requests=len(answers),
           rejected_401=sum(s == 401 for s in answers.values()), runs=counts,
           effects=ledger.effects, by_status=dict(Counter(answers.values())))

    expected = {}
    for name, (_, _, _, timestamped) in SCHEMES.items():
        for case in ("tampered body", "wrong secret", "no signature", "retired secret",
                     *(("expired", "from the future") if timestamped else ())):
            expected[(name, case)] = 401
        expected[(name, "genuine")] = 202
        expected[(name, "replayed")] = 401 if timestamped else 200  # 200: a duplicate
    assert answers == expected
    assert rejected == sum(s == 401 for s in expected.values())
    assert counts == {"succeeded": len(SCHEMES)}  # the genuine ones only
    assert set(ledger.keys) == {f"{name}-1" for name in SCHEMES}
    assert ledger.effects == len(SCHEMES)
