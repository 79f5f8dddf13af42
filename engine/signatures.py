"""The contract of webhook signature schemes: what a scheme publishes and what it raises.

A scheme (``connectors/signatures/`` or a plugin) publishes ``SCHEME = Scheme(name, config,
verify, sign)`` under the ``flowrunner.signatures`` entry-point group. The engine checks a
flow's ``signature:`` against the scheme's config model when the flow is loaded (`check_spec`,
so ``flowrun validate`` reports a bad scheme, option or secret reference), resolves the secrets
when ``flowrun serve`` starts, and calls ``verify`` on every request's raw body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from engine.problems import Path, did_you_mean
from engine.refs import REF

ConfigT = TypeVar("ConfigT", bound=BaseModel)
ConfigT_contra = TypeVar("ConfigT_contra", bound=BaseModel, contravariant=True)


class SignatureError(Exception):
    """A request failed signature verification.

    ``reason`` is short and safe to log or return to the caller: it names headers and
    limits, never a secret, a computed signature or a header's value.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Verifier(Protocol[ConfigT_contra]):
    """Checks one request; returns None when it is authentic, raises SignatureError if not.

    ``headers`` is looked up case-insensitively. Any one of ``secrets`` may have signed the
    request (several are active while a secret is rotated). ``now`` is Unix time in seconds.
    """

    def __call__(
        self,
        config: ConfigT_contra,
        body: bytes,
        headers: Mapping[str, str],
        secrets: Sequence[str],
        now: float,
    ) -> None: ...


class Signer(Protocol[ConfigT_contra]):
    """Produces the headers a sender would add so that ``body`` verifies under ``secret``."""

    def __call__(
        self, config: ConfigT_contra, body: bytes, secret: str, now: float
    ) -> dict[str, str]: ...


@dataclass(frozen=True)
class Scheme(Generic[ConfigT]):
    """What each scheme module publishes as ``SCHEME`` for the entry-point group."""

    name: str
    config: type[ConfigT]
    verify: Verifier[ConfigT]
    sign: Signer[ConfigT]


@dataclass
class Checked:
    """A flow's ``signature:`` checked against its scheme: what `check_spec` found."""

    scheme: Scheme[Any] | None = None
    config: BaseModel | None = None
    #: each secret reference and where it is written
    refs: list[tuple[Path, str]] = field(default_factory=list)
    #: (path under ``signature:``, message, whether the path is a key) per problem
    problems: list[tuple[Path, str, bool]] = field(default_factory=list)


def check_spec(spec: dict[str, Any], schemes: Mapping[str, Scheme[Any]]) -> Checked:
    """Check a trigger's ``signature:`` mapping: a known scheme, its options, and secrets
    written as ``${secret:NAME}``. Needs no secret values, so it runs at load."""
    out = Checked()
    name = str(spec["scheme"]).replace("-", "_")  # standard-webhooks reads better in YAML
    scheme = schemes.get(name)
    if scheme is None:
        known = ", ".join(sorted(schemes))
        out.problems.append((("scheme",), f"unknown signature scheme '{spec['scheme']}'"
                             + (did_you_mean(name, schemes) or f"; known schemes: {known}"),
                             False))
        return out
    options = {k: v for k, v in spec.items() if k not in ("scheme", "secret")}
    try:
        out.config = scheme.config.model_validate(options)
    except ValidationError as exc:
        for error in exc.errors():
            message = error["msg"]
            if error["type"] == "extra_forbidden":
                allowed = list(scheme.config.model_fields)
                message = (f"'{error['loc'][-1]}' is not an option of the {scheme.name} scheme"
                           + (did_you_mean(str(error["loc"][-1]), allowed) or
                              (f"; its options are {', '.join(allowed)}" if allowed else
                               "; it takes only 'scheme' and 'secret'")))
            out.problems.append((tuple(error["loc"]), message,
                                 error["type"] == "extra_forbidden"))
        return out
    refs = spec.get("secret")
    listed = refs if isinstance(refs, list) else [refs]
    if refs is None or not listed:
        out.problems.append(((), "a signature needs 'secret: ${secret:NAME}' (or a list of "
                                 "them while a secret is rotated)", False))
        return out
    for i, ref in enumerate(listed):
        where: Path = ("secret", i) if isinstance(refs, list) else ("secret",)
        if not isinstance(ref, str) or not any(m["kind"] == "secret" for m in REF.finditer(ref)):
            # a literal secret would sit in version control next to the flow
            out.problems.append((where, "write the secret as ${secret:NAME}, never the value "
                                        "itself", False))
            continue
        out.refs.append((where, ref))
    out.scheme = scheme
    return out
