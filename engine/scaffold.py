"""`flowrun init [DIR]`: a new project that validates and passes its tests at once.

It lays out ``flows/`` with an example flow, its test and a sample message (``engine/starter/``),
``schemas/`` with the canonical business schemas and the editor schemas of flow and test files
(copied from the shipped ones, `engine.shipped`), and ``connections/``. Nothing existing is
overwritten: a folder that already holds any of these files is refused, naming them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.shipped import schemas_dir

STARTER = Path(__file__).resolve().parent / "starter"


def plan(target: Path) -> dict[Path, Path]:
    """Every file ``init`` writes (destination → source)."""
    files = {target / p.relative_to(STARTER): p for p in sorted(STARTER.rglob("*"))
             if p.is_file()}
    shipped = schemas_dir()
    files |= {target / "schemas" / p.relative_to(shipped): p for p in sorted(shipped.rglob("*"))
              if p.is_file()}
    return files


class AlreadyThere(Exception):
    """*target* already holds files ``init`` would write."""


def init(target: Path) -> list[Path]:
    """Write the project into *target* (made if missing); the files written."""
    files = plan(target)
    clashes = [dest for dest in files if dest.exists()]
    if clashes:
        shown = ", ".join(str(p.relative_to(target)) for p in clashes[:3])
        more = f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
        raise AlreadyThere(f"{target} already has {shown}{more}; nothing written (run "
                           "`flowrun init` in a new or empty folder)")
    for dest, source in files.items():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
    return list(files)
