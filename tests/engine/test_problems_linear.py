"""Validating a flow with many problems costs work linear in their number: the duplicate check
of `Problems` once compared every new problem with all before it (20,000 unknown keys took half
a minute). Counted in comparisons made by the real loader, not in time."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.loader import Loader
from engine.problems import Problem, Problems


def unknown_keys(folder: Path, n: int) -> Path:
    keys = "".join(f"unknown_key_{i}: {i}\n" for i in range(n))
    path = folder / f"big{n}.yaml"
    path.write_text(f"flow: big\n{keys}steps:\n  - id: a\n    set: {{x: y}}\n", encoding="utf-8")
    return path


def comparisons(loader: Loader, path: Path, n: int, monkeypatch: pytest.MonkeyPatch) -> int:
    count = 0
    equal = Problem.__eq__

    def counted(self: Problem, other: object) -> bool:
        nonlocal count
        count += 1
        return equal(self, other)

    with monkeypatch.context() as patch:
        patch.setattr(Problem, "__eq__", counted)
        flows = loader.load_paths([path])  # as `flowrun validate` loads
    assert not flows.ok
    assert sum("unknown_key_" in p.message for p in flows.problems) == n
    return count


def test_problem_bookkeeping_grows_linearly(loader: Loader, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    small, large = (comparisons(loader, unknown_keys(tmp_path, n), n, monkeypatch)
                    for n in (200, 800))
    # all-pairs would be ~20,000 and ~320,000; linear stays within a few per problem
    assert small <= 2 * 200 and large <= 2 * 800


def test_a_repeated_problem_is_kept_once() -> None:
    first = Problem("f.yaml", 1, 1, "flow", "bad")
    problems = Problems([first])
    problems.add(Problem("f.yaml", 1, 1, "flow", "bad"))
    problems.extend([Problem("f.yaml", 2, 1, "flow", "bad"), first])
    assert [p.line for p in problems] == [1, 2]
