"""Validation errors raised (or collected) while parsing and rendering X12.

Every error names where it happened the way an EDI analyst reads a file: the
1-based segment number inside the interchange (ISA is segment 1), the segment
id and, when an element is at fault, the element reference (``SE01``).  The
error also carries the 997 code that describes it, so the acknowledgment
generator can turn a list of collected errors into AK3/AK4/AK5/AK9 segments
without re-deriving what went wrong.
"""

from __future__ import annotations

from typing import Any, Literal

#: Where in the 997 an error is reported: ``interchange`` errors have no 997
#: representation (that is TA1 territory), ``group`` ones go to AK905,
#: ``set`` ones to AK502, ``segment`` ones to AK304 and ``element`` ones to AK403.
Level = Literal["interchange", "group", "set", "segment", "element"]


class X12Error(ValueError):
    """Malformed or inconsistent EDI, located to a segment and element.

    ``segment_index`` is the 1-based position of the segment in the
    interchange; ``element_index`` the 1-based element position (``None`` when
    the whole segment is at fault).  ``str(err)`` reads e.g.
    ``segment 12 (SE), element SE01: ...``.
    """

    def __init__(
        self,
        message: str,
        segment_index: int | None = None,
        segment_id: str | None = None,
        element_index: int | None = None,
        *,
        component_index: int | None = None,
        level: Level = "segment",
        code: str = "",
        value: str | None = None,
        group_index: int | None = None,
        transaction_index: int | None = None,
        set_position: int | None = None,
        interchange: str | None = None,
    ) -> None:
        self.message = message
        self.segment_index = segment_index
        self.segment_id = segment_id
        self.element_index = element_index
        self.component_index = component_index
        self.level: Level = level
        self.code = code
        self.value = value
        # The 0-based group/transaction and the 1-based position inside the
        # transaction set (ST = 1) are what a 997 needs to point at the error.
        self.group_index = group_index
        self.transaction_index = transaction_index
        self.set_position = set_position
        # ISA13 of the interchange at fault (or "#2" while its ISA cannot be read): a
        # file may hold several interchanges, each numbering its segments from 1.
        self.interchange = interchange
        super().__init__(self._format())

    def __str__(self) -> str:
        # Formatted late: the parser names the interchange after the error was made.
        return self._format()

    def _format(self) -> str:
        where: list[str] = []
        if self.interchange is not None:
            where.append(f"interchange {self.interchange}")
        if self.segment_index is not None:
            seg = f"segment {self.segment_index}"
            if self.segment_id:
                seg += f" ({self.segment_id})"
            where.append(seg)
        elif self.segment_id:
            where.append(f"segment {self.segment_id}")
        if self.element_index is not None:
            ref = f"element {self.segment_id or ''}{self.element_index:02d}"
            if self.component_index is not None:
                ref += f"-{self.component_index}"
            where.append(ref)
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message

    def to_dict(self) -> dict[str, Any]:
        """JSON form used for the ``errors`` list of a leniently parsed document."""
        return {
            "message": str(self),
            "segment_index": self.segment_index,
            "segment_id": self.segment_id,
            "element_index": self.element_index,
            "component_index": self.component_index,
            "level": self.level,
            "code": self.code,
            "value": self.value,
            "group_index": self.group_index,
            "transaction_index": self.transaction_index,
            "set_position": self.set_position,
            "interchange": self.interchange,
        }


class ErrorSink:
    """Raises the first error (strict) or collects them all (lenient).

    Parsing code reports every problem through one sink so that the strict
    and the lenient path cannot drift apart.
    """

    def __init__(self, strict: bool, interchange: str | None = None) -> None:
        self.strict = strict
        self.interchange = interchange
        self.errors: list[X12Error] = []
        # Problems that lose nothing (the value is kept whole) but that an analyst should
        # see: raised when strict like errors, collected apart otherwise, never in a 997.
        self.warnings: list[X12Error] = []
        # Set by the envelope parser while it walks a set so that errors found
        # deep inside the typed views still know which group/set they belong to.
        self.group_index: int | None = None
        self.transaction_index: int | None = None
        self.set_start: int | None = None
        # One error per element: the element dictionary and a typed view may both find a
        # value that is not a number; the 997 lists each bad element once.
        self._elements: set[tuple[int | None, int | None, int | None]] = set()

    def report(self, err: X12Error) -> None:
        self._locate(err)
        if err.level == "element" and err.segment_index is not None:
            where = (err.segment_index, err.element_index, err.component_index)
            if where in self._elements:
                return
            self._elements.add(where)
        if self.strict:
            raise err
        self.errors.append(err)

    def warn(self, err: X12Error) -> None:
        self._locate(err)
        if self.strict:
            raise err
        self.warnings.append(err)

    def _locate(self, err: X12Error) -> None:
        if err.interchange is None:
            err.interchange = self.interchange
        if err.group_index is None:
            err.group_index = self.group_index
        if err.transaction_index is None:
            err.transaction_index = self.transaction_index
        if (
            err.set_position is None
            and self.set_start is not None
            and err.segment_index is not None
            and err.level in ("segment", "element", "set")
        ):
            err.set_position = err.segment_index - self.set_start + 1
