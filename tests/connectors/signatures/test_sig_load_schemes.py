"""Tests for scheme discovery through the ``flowrunner.signatures`` entry-point group.

``test_installed_distribution_registers_every_scheme`` needs the entry points declared in
pyproject.toml and the project installed (``pip install -e .``); until then it fails, on
purpose, rather than being skipped. The other tests fake the entry points.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, EntryPoints
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel

import connectors.signatures as signatures
from connectors.signatures import (
    GROUP,
    Scheme,
    github,
    hmac,
    load_schemes,
    shopify,
    standard_webhooks,
    stripe,
)
from connectors.signatures.hmac import HmacConfig

MODULES: dict[str, ModuleType] = {
    "hmac": hmac,
    "shopify": shopify,
    "stripe": stripe,
    "github": github,
    "standard_webhooks": standard_webhooks,
}


def _impostor_verify(*args: Any, **kwargs: Any) -> None:
    return None


IMPOSTOR = Scheme(
    name="stripe",
    config=stripe.StripeConfig,
    verify=_impostor_verify,
    sign=stripe.sign,
)


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, lines: list[tuple[str, str]]) -> None:
    points = EntryPoints(EntryPoint(name=n, value=v, group=GROUP) for n, v in lines)

    def entry_points(*, group: str) -> EntryPoints:
        assert group == GROUP
        return points

    monkeypatch.setattr(signatures, "entry_points", entry_points)


def test_installed_distribution_registers_every_scheme() -> None:
    schemes = load_schemes()
    assert set(MODULES) <= set(schemes)
    for name, module in MODULES.items():
        assert schemes[name] is module.SCHEME


def test_entry_point_lines_load_each_module_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [(name, f"connectors.signatures.{name}:SCHEME") for name in MODULES]
    fake_entry_points(monkeypatch, lines)
    schemes = load_schemes()
    assert schemes == {name: module.SCHEME for name, module in MODULES.items()}


def test_non_scheme_entry_point_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, [("hmac", "connectors.signatures.hmac:verify")])
    with pytest.raises(TypeError, match="is not a Scheme"):
        load_schemes()


def test_name_mismatch_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, [("paypal", "connectors.signatures.stripe:SCHEME")])
    with pytest.raises(ValueError, match="names its scheme 'stripe'"):
        load_schemes()


def test_a_second_registration_of_a_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [("stripe", "connectors.signatures.stripe:SCHEME")]
    lines.append(("stripe", f"{__name__}:IMPOSTOR"))
    fake_entry_points(monkeypatch, lines)
    with pytest.raises(ValueError, match="registered twice"):
        load_schemes()


def test_the_same_scheme_listed_twice_is_harmless(monkeypatch: pytest.MonkeyPatch) -> None:
    line = ("github", "connectors.signatures.github:SCHEME")
    fake_entry_points(monkeypatch, [line, line])
    assert load_schemes() == {"github": github.SCHEME}


def default_config(name: str) -> BaseModel:
    if name == "hmac":
        return HmacConfig(
            header="X-Signature", payload_template="{timestamp}.{body}", timestamp_header="X-Ts"
        )
    config: BaseModel = MODULES[name].SCHEME.config()
    return config


@pytest.mark.parametrize("name", list(MODULES))
def test_every_scheme_round_trips_and_describes_its_config(name: str) -> None:
    scheme = MODULES[name].SCHEME
    assert scheme.name == name
    assert scheme.config.model_config.get("extra") == "forbid"
    assert all(field.description for field in scheme.config.model_fields.values())
    config = default_config(name)
    body = b'{"order": 1}'
    secret = "whsec_c2lnbmluZy1rZXktZm9yLXJvdW5kLXRyaXA="
    headers = scheme.sign(config, body, secret, 1_700_000_000)
    scheme.verify(config, body, headers, [secret], 1_700_000_000)
    with pytest.raises(signatures.SignatureError):
        scheme.verify(config, body + b"!", headers, [secret], 1_700_000_000)
