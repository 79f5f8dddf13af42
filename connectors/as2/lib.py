"""pyas2lib, imported once, with the one-line fix its crypto backend needs on OpenSSL 3.

pyas2lib does the S/MIME and MDN work through oscrypto, whose last release (1.3.0) reads the
OpenSSL version with a pattern that takes one digit per part: "3.0.19" does not match and the
import fails with "Error detecting the version of libcrypto". The fix upstream (a ``\\d+`` per
part) is unreleased, so the version module is loaded here from its own source with that pattern
widened — nothing on disk is changed, and a release that fixed it is left alone.
"""

from __future__ import annotations

import importlib.util
import logging
import sys

_NARROW = r"'\\b(\\d\\.\\d\\.\\d[a-z]*)\\b'"
_WIDE = r"'\\b(\\d+\\.\\d+\\.\\d+[a-z]*)\\b'"


def _require_pyas2lib() -> None:
    # checked before oscrypto is touched, so a missing extra is named as pyas2lib (what
    # `flowrun connectors` and `flowrun serve` tell to install), not as one of its dependencies
    if importlib.util.find_spec("pyas2lib") is None:
        raise ModuleNotFoundError("AS2 needs pyas2lib: install flowrunner[as2]",
                                  name="pyas2lib")


def _widen_oscrypto_version_pattern() -> None:
    import oscrypto

    if oscrypto.backend() != "openssl":
        return
    name = f"oscrypto._openssl._libcrypto_{oscrypto.ffi()}"
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.origin is None:
        return
    source = spec.loader.get_source(name)  # type: ignore[attr-defined]
    if source is None or _NARROW not in source:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        exec(compile(source.replace(_NARROW, _WIDE), spec.origin, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise


_require_pyas2lib()
_widen_oscrypto_version_pattern()

import pyas2lib  # noqa: E402  (after the fix above)
from pyas2lib import Mdn, Message, Organization, Partner  # noqa: E402
from pyas2lib.exceptions import AS2Exception, ImproperlyConfigured  # noqa: E402

# pyas2lib logs whole decrypted payloads at DEBUG and a traceback for every refused message at
# ERROR; flowrunner logs each outcome itself, with the reason and without the business data
logging.getLogger("pyas2lib").setLevel(logging.CRITICAL)

__all__ = ["AS2Exception", "ImproperlyConfigured", "Mdn", "Message", "Organization", "Partner",
           "pyas2lib"]
