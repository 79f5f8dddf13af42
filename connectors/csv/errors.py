"""Error types of the flat-file library.

Partner files usually contain many bad rows at once; reporting them one per
upload round-trip wastes days. Parsers therefore collect every problem (up to a
cap) and raise a single :class:`FlatFileErrors` that lists them, each naming the
row and column a person has to fix.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Default cap on collected errors: enough to show the pattern of a broken file
#: without building a huge exception for a file that is wrong on every line.
MAX_ERRORS = 100


class FlatFileError(ValueError):
    """One problem in a flat file.

    ``row`` is 1-based and counts the header record as row 1 (so it matches the
    row number a spreadsheet shows); ``None`` when the problem is not tied to a
    row (e.g. configuration). ``column`` is the column or field name, or
    ``None`` when the whole row is affected.
    """

    def __init__(self, message: str, row: int | None = None, column: str | None = None) -> None:
        self.message = message
        self.row = row
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def __repr__(self) -> str:
        return f"FlatFileError({self.message!r}, row={self.row!r}, column={self.column!r})"

    def __eq__(self, other: object) -> bool:
        # Value equality for single errors makes assertions and de-duplication easy;
        # the aggregate below keeps identity semantics like any exception.
        if type(other) is not FlatFileError or type(self) is not FlatFileError:
            return NotImplemented
        return (self.message, self.row, self.column) == (other.message, other.row, other.column)

    def __hash__(self) -> int:
        return hash((self.message, self.row, self.column))

    def to_dict(self) -> dict[str, str | int | None]:
        """JSON-friendly form for step results and dead-letter records."""
        return {"message": self.message, "row": self.row, "column": self.column}


class FlatFileErrors(FlatFileError):
    """All problems found in one file; raised by every parse and render function.

    Subclasses :class:`FlatFileError` so ``except FlatFileError`` catches both.
    ``row``/``column`` are those of the first error; ``truncated`` is true when
    more errors existed than the cap allowed to collect.
    """

    def __init__(self, errors: Sequence[FlatFileError], *, truncated: bool = False) -> None:
        if not errors:
            raise ValueError("FlatFileErrors needs at least one error")
        self.errors: list[FlatFileError] = list(errors)
        self.truncated = truncated
        first = self.errors[0]
        more = len(self.errors) - 1
        summary = str(first)
        if more or truncated:
            summary += f" (and {more}{'+' if truncated else ''} more)"
        super().__init__(summary, first.row, first.column)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"FlatFileErrors({self.errors!r}, truncated={self.truncated!r})"

    __eq__ = ValueError.__eq__
    __hash__ = ValueError.__hash__


class ErrorCollector:
    """Accumulates errors up to a cap; parsers stop reading once the cap is hit."""

    def __init__(self, max_errors: int = MAX_ERRORS) -> None:
        if max_errors < 1:
            raise ValueError("max_errors must be at least 1")
        self.max_errors = max_errors
        self.errors: list[FlatFileError] = []
        self.truncated = False

    @property
    def full(self) -> bool:
        return len(self.errors) >= self.max_errors

    def add(self, message: str, row: int | None = None, column: str | None = None) -> None:
        if self.full:
            self.truncated = True
            return
        self.errors.append(FlatFileError(message, row, column))

    def raise_if_any(self) -> None:
        if self.errors:
            raise FlatFileErrors(self.errors, truncated=self.truncated)
