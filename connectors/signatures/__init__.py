"""Webhook signature verification: one module per scheme, found through entry points.

A scheme module publishes ``SCHEME = Scheme(name=…, config=…, verify=…, sign=…)`` and is
registered in the ``flowrunner.signatures`` entry-point group, so a new scheme (here or in a
plugin distribution) needs no edit to a central list. ``load_schemes()`` collects them.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from connectors.signatures.base import Scheme, SignatureError

GROUP = "flowrunner.signatures"

__all__ = ["GROUP", "Scheme", "SignatureError", "load_schemes"]


def load_schemes() -> dict[str, Scheme[Any]]:
    """Every registered scheme by name.

    Refuses entry points that are not a ``Scheme``, whose scheme name differs from the
    entry-point name, or that claim a name another distribution already registered: a
    plugin silently replacing e.g. ``stripe`` would change what counts as authentic.
    """
    schemes: dict[str, Scheme[Any]] = {}
    for point in entry_points(group=GROUP):
        scheme = point.load()
        if not isinstance(scheme, Scheme):
            raise TypeError(f"entry point {point.name} = {point.value} is not a Scheme")
        if scheme.name != point.name:
            raise ValueError(
                f"entry point {point.name} = {point.value} names its scheme {scheme.name!r}"
            )
        if point.name in schemes and schemes[point.name] is not scheme:
            raise ValueError(f"signature scheme {point.name!r} is registered twice")
        schemes[point.name] = scheme
    return schemes
