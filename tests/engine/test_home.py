"""The state folder is private: FLOWRUN_HOME is made 0700, and the state database, its -wal and
-shm files and the X12 control numbers 0600 — also when an older install left them 755/644.
Real files, a real App writing a real run."""

from __future__ import annotations

import stat
from pathlib import Path

from connectors.x12.step import _sqlite_numbers
from engine.home import private_folder
from tests.conftest import make_app

FLOW = "flow: t\nsteps:\n  - id: keep\n    set: {a: order}\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes_under(home: Path) -> dict[str, int]:
    return {p.name: mode(p) for p in home.iterdir()}


def test_a_new_home_and_its_database_files_are_private(tmp_path: Path) -> None:
    home = tmp_path / "deep" / ".flowrun"
    app = make_app(tmp_path, {"t": FLOW}, home=home)
    app.accept(app.flows.flows["t"], {"order": 1})  # a write: the WAL and its index exist now
    assert mode(home) == 0o700
    found = modes_under(home)
    assert {"state.db", "state.db-wal", "state.db-shm"} <= set(found)
    assert found == {name: 0o600 for name in found}
    app.store.close()


def test_an_older_open_home_is_tightened(tmp_path: Path) -> None:
    home = tmp_path / ".flowrun"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    (home / "state.db").touch()
    (home / "state.db").chmod(0o644)
    app = make_app(tmp_path, {"t": FLOW}, home=home)
    assert mode(home) == 0o700 and mode(home / "state.db") == 0o600
    app.store.close()


def test_x12_control_numbers_are_private(tmp_path: Path) -> None:
    numbers = tmp_path / "home" / "x12-control-numbers.db"
    _sqlite_numbers(str(numbers))
    assert mode(numbers.parent) == 0o700 and mode(numbers) == 0o600


def test_a_shared_sticky_folder_given_as_home_is_left_open(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # as /tmp: closing it would lock every other user out
    private_folder(shared)
    assert mode(shared) == 0o1777
