"""Every Python package of the source tree is in the wheel (pyproject's explicit list)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_directory_is_listed_for_the_wheel() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found: set[str] = set()
    for name, directory in setuptools["package-dir"].items():
        top = ROOT / directory
        for init in top.rglob("__init__.py"):
            if "node_modules" in init.parts:
                continue
            relative = init.parent.relative_to(top).parts
            found.add(".".join((name, *relative)))
    assert found - listed == set(), "packages missing from [tool.setuptools].packages"
