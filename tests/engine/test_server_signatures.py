"""Every signature scheme through the server: requests signed with the scheme's own `sign()`,
the providers' published vectors, secret rotation, and start-up errors for bad configuration.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import pytest
from test_server_harness import SECRETS, SHOP_FLOW, make_app, serving

from connectors.signatures import load_schemes
from engine.server import ServerConfigError, create_app

FLOWS = Path(__file__).resolve().parents[2] / "flows"


def hook_flow(signature: str, path: str = "/hooks/x", extra: str = "") -> str:
    return f"""
flow: signed
trigger:
  webhook:
    path: {path}
    signature: {signature}
{extra}steps:
  - id: keep
    set: {{kept: "true"}}
"""


# scheme as spelled in YAML, scheme options, the secret name, the options as a config dict
CASES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("shopify", "", "SHOP", {}),
    ("stripe", ", tolerance_seconds: 600", "STRIPE", {"tolerance_seconds": 600}),
    ("github", "", "GITHUB", {}),
    ("github", ", accept_legacy_sha1: true", "GITHUB", {"accept_legacy_sha1": True}),
    ("standard-webhooks", "", "STDWH", {}),
    ("standard_webhooks", ", header_prefix: svix-", "STDWH", {"header_prefix": "svix-"}),
    ("hmac", ", header: X-Signature, encoding: base64, payload_template: '{timestamp}.{body}', "
             "timestamp_header: X-Timestamp", "GENERIC",
     {"header": "X-Signature", "encoding": "base64", "payload_template": "{timestamp}.{body}",
      "timestamp_header": "X-Timestamp"}),
]


@pytest.mark.parametrize("spelled, options, secret, config", CASES,
                         ids=[f"{c[0]}{'+opts' if c[1] else ''}" for c in CASES])
def test_each_scheme_signed_by_its_own_sign_is_accepted(
        tmp_path: Path, spelled: str, options: str, secret: str, config: dict[str, Any]) -> None:
    scheme = load_schemes()[spelled.replace("-", "_")]
    flow = hook_flow(f'{{scheme: {spelled}, secret: "${{secret:{secret}}}"{options}}}')
    app = make_app(tmp_path, {"signed": flow})
    body = b'{"event": "order.created", "id": 42}'
    with serving(app, executor=False) as server:
        headers = scheme.sign(scheme.config(**config), body, SECRETS[secret], time.time())
        headers["Content-Type"] = "application/json"
        response = server.post("/hooks/x", body, headers)
        assert response.status_code == 202, response.text
        # the same headers on another body: refused, and not recorded
        response = server.post("/hooks/x", body.replace(b"42", b"43"), headers)
        assert response.status_code == 401
        assert response.json()["error"].startswith("signature rejected: ")
        assert server.runs() == 1
        assert server.counter("signature_rejected") == 1


# -- the providers' vectors (from tests/connectors/signatures) ----------------------------------
def test_github_documented_vector(tmp_path: Path) -> None:
    app = make_app(tmp_path, {"signed": hook_flow('{scheme: github, secret: '
                                                  '"${secret:GITHUB}"}')})
    with serving(app, executor=False) as server:
        headers = {"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c2"
                                          "2c46f4379c8b043e17", "Content-Type": "text/plain"}
        response = server.post("/hooks/x", b"Hello, World!", headers)
        assert response.status_code == 202, response.text
        state = app.store.get_run(response.json()["run_id"])
        assert state is not None and state.envelope["body"] == "Hello, World!"


def test_shopify_independent_vector(tmp_path: Path) -> None:
    flow = hook_flow('{scheme: shopify, secret: "${secret:HUSH}"}')
    app = make_app(tmp_path, {"signed": flow}, extra_secrets={"HUSH": "hush"})
    with serving(app, executor=False) as server:
        body = b'{"id":820982911946154508,"email":"jon@example.com"}'
        headers = {"X-Shopify-Hmac-Sha256": "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8=",
                   "Content-Type": "application/json"}
        response = server.post("/hooks/x", body, headers)
        assert response.status_code == 202, response.text


def test_the_shipped_woocommerce_flow_takes_a_body_signed_the_woocommerce_way(
        tmp_path: Path) -> None:
    """WooCommerce puts base64(HMAC-SHA256(webhook secret, raw body)) in X-WC-Webhook-Signature;
    the shipped flow's generic hmac configuration must accept exactly that, computed here
    independently of flowrunner's signing code."""
    shipped = {name: (FLOWS / f"{name}.yaml").read_text("utf-8")
               for name in ("woocommerce-order-intake", "canonical-order-to-erp")}
    secret = "wc-secret-5f2b8e"
    app = make_app(tmp_path, shipped, extra_secrets={"WOOCOMMERCE_WEBHOOK_SECRET": secret})
    body = (FLOWS / "samples" / "woocommerce-order.json").read_bytes()
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    headers = {"X-WC-Webhook-Signature": signature.decode(), "X-WC-Webhook-Topic":
               "order.created", "X-WC-Webhook-Delivery-ID": "4f1c2b", "Content-Type":
               "application/json"}
    with serving(app, executor=False) as server:
        accepted = server.post("/hooks/woocommerce/orders", body, headers)
        assert accepted.status_code == 202, accepted.text
        state = app.store.get_run(accepted.json()["run_id"])
        assert state is not None and state.key == "727"
        tampered = server.post("/hooks/woocommerce/orders", body.replace(b'"57.22"', b'"5.22"'),
                               {**headers, "X-WC-Webhook-Delivery-ID": "4f1c2c"})
        assert tampered.status_code == 401
        assert server.runs() == 1


def test_stripe_recipe_vector_at_its_own_time(tmp_path: Path) -> None:
    app = make_app(tmp_path, {"signed": hook_flow('{scheme: stripe, secret: '
                                                  '"${secret:STRIPE}"}')})
    body = b'{"id":"evt_test_webhook","object":"event"}'
    header = ("t=1492774577,v1=88a022085c6bdb887b02cb26ff76dd681234d9675c0f22844059f55552a8883a")
    headers = {"Stripe-Signature": header, "Content-Type": "application/json"}
    with serving(app, clock=lambda: 1492774577 + 10, executor=False) as server:
        assert server.post("/hooks/x", body, headers).status_code == 202
    # the same vector today is a replay: outside the tolerance window
    app = make_app(tmp_path / "now", {"signed": hook_flow('{scheme: stripe, secret: '
                                                          '"${secret:STRIPE}"}')})
    with serving(app, executor=False) as server:
        response = server.post("/hooks/x", body, headers)
        assert response.status_code == 401
        assert "timestamp outside tolerance" in response.json()["error"]


def test_standard_webhooks_published_vector(tmp_path: Path) -> None:
    flow = hook_flow('{scheme: standard-webhooks, secret: "${secret:STDWH}"}',
                     extra='    idempotency_key: $headers."webhook-id"\n')
    app = make_app(tmp_path, {"signed": flow})
    headers = {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
               "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
               "Content-Type": "application/json"}
    with serving(app, clock=lambda: 1614265330, executor=False) as server:
        first = server.post("/hooks/x", b'{"test": 2432232314}', headers)
        again = server.post("/hooks/x", b'{"test": 2432232314}', headers)
        assert first.status_code == 202, first.text
        assert again.status_code == 200 and again.json()["duplicate"] is True


# -- rotation ----------------------------------------------------------------------------------
def test_rotation_accepts_every_listed_secret_and_no_other(tmp_path: Path) -> None:
    flow = SHOP_FLOW.replace('secret: "${secret:SHOP}"',
                             'secret: ["${secret:SHOP}", "${secret:SHOP_OLD}"]')
    app = make_app(tmp_path, {"shop-orders": flow})
    scheme = load_schemes()["shopify"]
    with serving(app, executor=False) as server:
        for i, secret in enumerate([SECRETS["SHOP"], SECRETS["SHOP_OLD"], "retired-secret"]):
            body = b'{"id": %d}' % i
            headers = scheme.sign(scheme.config(), body, secret, 0)
            headers.update({"Content-Type": "application/json", "X-Shopify-Webhook-Id": str(i)})
            assert server.post("/hooks/shop", body, headers).status_code == (401 if i == 2
                                                                             else 202)
        assert server.runs() == 2


# -- start-up errors ---------------------------------------------------------------------------
@pytest.mark.parametrize("signature, where, message", [
    ('{scheme: shopfy, secret: "${secret:SHOP}"}', "signature.scheme",
     "unknown signature scheme 'shopfy'; did you mean 'shopify'?"),
    ('{scheme: paypal, secret: "${secret:SHOP}"}', "signature.scheme",
     "known schemes: github, hmac, shopify, standard_webhooks, stripe"),
    ('{scheme: stripe, secret: "${secret:STRIPE}", tolerance_secs: 60}',
     "signature.tolerance_secs", "not an option of the stripe scheme; did you mean "
                                 "'tolerance_seconds'?"),
    ('{scheme: shopify, secret: "${secret:SHOP}", header: X-Sig}', "signature.header",
     "it takes only 'scheme' and 'secret'"),
    ('{scheme: stripe, secret: "${secret:STRIPE}", tolerance_seconds: -5}',
     "signature.tolerance_seconds", "greater than 0"),
    ('{scheme: hmac, secret: "${secret:GENERIC}"}', "signature.header", "Field required"),
    ('{scheme: hmac, secret: "${secret:GENERIC}", header: X-S, timestamp_header: X-T}',
     "signature", "timestamp_header needs a payload_template"),
    ('{scheme: shopify, secret: "shop-secret-2026"}', "signature.secret",
     "write the secret as ${secret:NAME}, never the value itself"),
    ('{scheme: shopify, secret: ["${secret:SHOP}", "${secret:NOT_SET}"]}', "signature.secret[1]",
     "${secret:NOT_SET} is not set; set FLOWRUN_SECRET_NOT_SET"),
    ('{scheme: shopify}', "signature", "a signature needs 'secret: ${secret:NAME}'"),
    ('{scheme: standard-webhooks, secret: "${secret:SHOP}"}', "signature.secret",
     "secret is not whsec_ followed by base64"),
])
def test_bad_signature_config_fails_at_start_up_naming_file_and_key(
        tmp_path: Path, signature: str, where: str, message: str) -> None:
    app = make_app(tmp_path, {"signed": hook_flow(signature)})
    with pytest.raises(ServerConfigError) as caught:
        create_app(app)
    text = str(caught.value)
    assert "signed.yaml:5:" in text
    assert f" trigger.webhook.{where}: " in text
    assert message in text
    assert SECRETS["SHOP"] not in text
    app.store.close()


def test_every_bad_trigger_is_reported_in_one_pass(tmp_path: Path) -> None:
    flows = {"one": hook_flow('{scheme: nope, secret: "${secret:SHOP}"}', "/a").replace(
                 "flow: signed", "flow: one"),
             "two": hook_flow('{scheme: shopify, secret: "plain"}', "/b").replace(
                 "flow: signed", "flow: two")}
    app = make_app(tmp_path, flows)
    with pytest.raises(ServerConfigError) as caught:
        create_app(app)
    assert [Path(p.file).name for p in caught.value.problems] == ["one.yaml", "two.yaml"]
    app.store.close()


def test_a_reserved_path_is_a_start_up_error(tmp_path: Path) -> None:
    app = make_app(tmp_path, {"signed": hook_flow('{scheme: shopify, secret: "${secret:SHOP}"}',
                                                  "/healthz")})
    with pytest.raises(ServerConfigError, match=r"trigger.webhook.path: '/healthz' is reserved"):
        create_app(app)
    app.store.close()


def test_an_unsigned_webhook_is_served_with_a_warning(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    flow = hook_flow("null")
    app = make_app(tmp_path, {"signed": flow})
    with serving(app, executor=False) as server:
        response = server.post("/hooks/x", b"{}", {"Content-Type": "application/json"})
        assert response.status_code == 202
    assert "accepts unsigned requests" in caplog.text
