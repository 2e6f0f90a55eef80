"""Fail unless every direct dependency is installed at exactly its declared lower bound.

Run in the venv `make test-lowest` builds with uv's lowest-direct resolution: a bound
that no install can reach (another package asks for more) would otherwise go untested.
"""

from __future__ import annotations

import sys
import tomllib
from importlib.metadata import version

from packaging.requirements import Requirement
from packaging.version import Version


def main() -> int:
    with open("pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    declared = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        declared += extra
    wrong = []
    for line in declared:
        req = Requirement(line)
        floor = next((Version(s.version) for s in req.specifier if s.operator == ">="), None)
        if floor is None:
            wrong.append(f"{req.name}: no '>=' lower bound")
            continue
        got = Version(version(req.name))
        if got != floor:
            wrong.append(f"{req.name}: declared >={floor}, but the lowest install got {got}")
    for problem in wrong:
        print(problem, file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
