"""Print ``name==version`` for every installed package flowrunner depends on, its extras' too.

The input of the dependency audit in ``.ci/run`` (``pip-audit --no-deps --disable-pip -r``):
exactly the project's dependency set as installed, not every package on the machine.

    python scripts/dependency_pins.py [EXTRA ...]     # e.g. dev
"""

from __future__ import annotations

import re
import sys
from importlib import metadata

from packaging.requirements import Requirement


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str, extras: list[str]) -> dict[str, str]:
    """Installed name -> version of *root*'s dependencies with *extras*, transitively."""
    found: dict[str, str] = {}
    todo = [(root, set(extras))]
    while todo:
        name, wanted = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency for another platform
        for line in dist.requires or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is not None and not any(
                    marker.evaluate({"extra": extra}) for extra in (wanted or {""})):
                continue
            key = _key(requirement.name)
            if key in found:
                continue
            try:
                found[key] = metadata.version(requirement.name)
            except metadata.PackageNotFoundError:
                continue
            todo.append((requirement.name, set(requirement.extras)))
    found.pop(_key(root), None)
    return found


if __name__ == "__main__":
    for name, version in sorted(closure("flowrunner-ipaas", sys.argv[1:]).items()):
        print(f"{name}=={version}")
