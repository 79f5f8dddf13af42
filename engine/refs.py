"""``${env:NAME}`` and ``${secret:NAME}`` references in flow text.

References are found when a flow is loaded (unresolved ones are warnings there) and substituted
when a step runs (unresolved ones are errors then). Secret values are remembered by the
`Redactor` so that no log line, run record, dead-letter entry or error message ever shows them.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import stat
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path as FsPath
from typing import Any
from urllib.parse import quote, quote_plus

from engine.problems import Path

REF = re.compile(r"\$\{(?P<kind>[a-z]+):(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)\}")
KINDS = ("env", "secret")
REDACTED = "***"


class UnresolvedReference(LookupError):
    def __init__(self, kind: str, name: str):
        hint = (f"set the environment variable {name}" if kind == "env" else
                f"set FLOWRUN_SECRET_{name} or add {name} to the secrets file")
        super().__init__(f"${{{kind}:{name}}} is not set; {hint}")
        self.kind, self.name = kind, name


def find_refs(data: Any, path: Path = ()) -> Iterator[tuple[Path, str, str, int]]:
    """Every reference in the strings of *data*: (path, kind, name, offset in the string)."""
    if isinstance(data, str):
        for match in REF.finditer(data):
            yield path, match["kind"], match["name"], match.start()
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from find_refs(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from find_refs(value, (*path, i))


class SecretsFileError(PermissionError):
    """The secrets file cannot be used as it is (its mode lets others read it)."""


class Secrets:
    """Secret values from ``FLOWRUN_SECRET_<NAME>`` or a ``NAME=value`` file readable only by
    its owner (a secrets file others can read is refused, so a leak is caught early)."""

    def __init__(self, file: str | None = None, environ: dict[str, str] | None = None):
        self._environ = os.environ if environ is None else environ
        self._file = file
        self._values: dict[str, str] | None = None
        self._lock = threading.Lock()
        self.redactor = Redactor()

    def _load_file(self) -> dict[str, str]:
        if not self._file:
            return {}
        path = FsPath(self._file)
        if not path.exists():
            return {}
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise SecretsFileError(f"the secrets file {path} is open to other users (mode "
                                   f"{mode:o}), so flowrunner does not read it; make it "
                                   f"readable by its owner only: chmod 600 {path}")
        values = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#") and "=" in line:
                name, _, value = line.partition("=")
                values[name.strip()] = value.strip()
        return values

    def get(self, name: str) -> str | None:
        value = self._environ.get(f"FLOWRUN_SECRET_{name}")
        if value is None:
            with self._lock:
                if self._values is None:
                    self._values = self._load_file()
            value = self._values.get(name)
        if value:
            self.redactor.add(value)
        return value

    def __call__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise UnresolvedReference("secret", name)
        return value


class Redactor:
    """Replaces every secret value seen so far with ``***`` in text and in nested data."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        with _REDACTORS_LOCK:
            _REDACTORS.add(self)
        _forget_patterns()
        weakref.finalize(self, _forget_patterns)

    def add(self, value: str) -> None:
        # very short values would redact ordinary words; such secrets are refused elsewhere
        if len(value) >= 4 and value not in self._values:
            # as it shows in a URL too: templates percent-encode it there ('a+b' is 'a%2Bb')
            self._values.update({value, quote(value, safe=""), quote_plus(value, safe="")})
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
            _forget_patterns()

    def text(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern else text

    def data(self, value: Any) -> Any:
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value


_REDACTORS: weakref.WeakSet[Redactor] = weakref.WeakSet()
_REDACTORS_LOCK = threading.Lock()


#: the patterns of every live `Redactor`, gathered once for `redact_known` (every log line
#: asks) and again after a redactor was made, learnt a value or went away: each of those
#: takes a new generation number, and the patterns are kept with the one they were read at
_generations = itertools.count(1)
_generation = 0
_patterns: tuple[int, tuple[re.Pattern[str], ...]] = (-1, ())


def _forget_patterns() -> None:
    global _generation
    _generation = next(_generations)  # no lock: a finalizer may run while one is held


def _known_patterns() -> tuple[re.Pattern[str], ...]:
    global _patterns
    seen, patterns = _patterns
    generation = _generation
    if seen != generation:
        with _REDACTORS_LOCK:
            redactors = list(_REDACTORS)
        patterns = tuple(r._pattern for r in redactors if r._pattern is not None)
        # a change meanwhile has a newer number than *generation*: the next call reads again
        _patterns = (generation, patterns)
    return patterns


def redact_known(text: str) -> str:
    """*text* with every secret value any `Redactor` of this process has seen replaced."""
    for pattern in _known_patterns():
        text = pattern.sub(REDACTED, text)
    return text


#: the record attribute where `RedactingFilter` leaves the message it formatted and masked
MESSAGE = "flowrun_message"


class RedactingFilter(logging.Filter):
    """Masks known secret values in a log record's final message and traceback.

    Attached to the loggers that may format secrets into their records: ours, and libraries
    that log request lines with the URL's query (urllib3 does at DEBUG). A filter on a logger
    sees only the records made on that very logger, hence the list of names.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, MESSAGE, None) is None:  # not already seen by this filter
            try:
                message = record.getMessage()
            except Exception:  # a broken format string is logging's own problem to report
                return True
            redacted = redact_known(message)
            if redacted != message:
                record.msg, record.args = redacted, None
            # flowrunner's formatters use it rather than formatting the message again
            setattr(record, MESSAGE, redacted)
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_known(logging.Formatter().formatException(record.exc_info))
        return True


_FILTER = RedactingFilter()


def redact_logs(*names: str) -> None:
    """Mask secrets in every record of the loggers *names* (idempotent)."""
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


redact_logs("flowrunner", "flowrunner.flow", "flowrunner.runner", "flowrunner.executor",
            "flowrunner.app")


def interpolate(text: str, secrets: Callable[[str], str],
                environ: dict[str, str] | None = None) -> str:
    """Substitute references in *text*; raises UnresolvedReference for a missing one."""
    env = os.environ if environ is None else environ

    def sub(match: re.Match[str]) -> str:
        kind, name = match["kind"], match["name"]
        if kind == "env":
            if name not in env:
                raise UnresolvedReference(kind, name)
            return env[name]
        return secrets(name)

    return REF.sub(sub, text)
