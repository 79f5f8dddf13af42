"""Build hook: the wheel carries the shipped flows, schemas and connections as package data.

The repository keeps them at the top level (``flows/``, ``schemas/``, ``connections/``), where
flow authors and the tests find them; a wheel installed anywhere needs them inside the package,
so they are copied to ``engine/_data/`` at build time (``engine/shipped.py`` finds either). An
editable install reads them from the checkout and copies nothing. Everything else is declared
in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("flows", "schemas", "connections")


class BuildWithShippedData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib, "engine", "_data")
        for name in SHIPPED:
            shutil.copytree(name, target / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithShippedData})
