"""The flows, schemas and connections that ship with flowrunner, wherever it is installed.

In a checkout (and an editable install) they are the repository's top-level ``flows/``,
``schemas/`` and ``connections/``; a wheel carries copies of the same folders as package data
under ``engine/_data/`` (made by the build hook in ``setup.py``). `data_dir` is the one place
that knows which: `flowrun demo`, `flowrun init` and the schema fallback all ask it.
"""

from __future__ import annotations

from pathlib import Path

FOLDERS = ("flows", "schemas", "connections")


def data_dir() -> Path:
    """The folder holding the shipped ``flows/``, ``schemas/`` and ``connections/``."""
    package = Path(__file__).resolve().parent
    installed = package / "_data"
    if (installed / "schemas").is_dir():
        return installed
    return package.parent  # a checkout: the repository root


def flows_dir() -> Path:
    return data_dir() / "flows"


def schemas_dir() -> Path:
    return data_dir() / "schemas"


def nearest_schemas(start: Path) -> Path:
    """The ``schemas/`` folder of a project: the nearest one at or above *start*; else the
    shipped one, so a flow naming ``canonical/order.v1`` validates in a bare folder too."""
    start = start.resolve()
    for folder in [start, *start.parents]:
        if (folder / "schemas").is_dir():
            return folder / "schemas"
    return schemas_dir()
