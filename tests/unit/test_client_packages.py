"""Packages in the SDK and the CLI: `packages=` in its wire form, `--package` parsed,
and `codebeaker run --package` sending it (against a canned service)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from codebeaker.client._cli_support import parse_package
from codebeaker.client._convert import build_spec, package_requests
from codebeaker.v1 import execution_pb2 as pb
from tests.unit.cli_environment import environment
from tests.unit.fake_service import ScriptedService, serve


def wire(requests: list[pb.PackageRequest]) -> list[tuple[str, str]]:
    return [(r.name, r.version) for r in requests]


# The SDK.


def test_a_list_of_names_asks_for_the_newest_allowed() -> None:
    assert wire(package_requests(["tabulate", "@scope/name"])) == [
        ("tabulate", ""),
        ("@scope/name", ""),
    ]
    assert wire(package_requests(name for name in ("six",))) == [("six", "")]  # any iterable
    assert package_requests(()) == []


def test_a_mapping_gives_each_a_version_or_range() -> None:
    asked = {"tabulate": ">=0.9, <1", "six": "1.16.0", "requests": ""}
    assert wire(package_requests(asked)) == [
        ("tabulate", ">=0.9, <1"),
        ("six", "1.16.0"),
        ("requests", ""),
    ]


@pytest.mark.parametrize("lone", ["tabulate", b"tabulate"])
def test_a_lone_string_is_a_type_error(lone: str | bytes) -> None:
    with pytest.raises(TypeError, match="not a single string"):
        package_requests(lone)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a single string"):
        build_spec("python", "print(1)", packages=lone)  # type: ignore[arg-type]


def test_the_spec_carries_the_packages() -> None:
    spec = build_spec("python", "import tabulate", packages={"tabulate": "0.9"})
    assert wire(list(spec.packages)) == [("tabulate", "0.9")]
    assert list(build_spec("python", "print(1)").packages) == []


# The CLI's --package.


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("tabulate", ("tabulate", "")),
        ("tabulate==0.9", ("tabulate", "==0.9")),
        ("tabulate>=0.9,<1", ("tabulate", ">=0.9,<1")),
        ("tabulate<1", ("tabulate", "<1")),
        (" tabulate >= 0.9 ", ("tabulate", ">= 0.9")),
        ("left-pad@1.3.0", ("left-pad", "1.3.0")),
        ("@scope/name", ("@scope/name", "")),
        ("@scope/name@2.0.0", ("@scope/name", "2.0.0")),
        ("@scope/name>=2", ("@scope/name", ">=2")),
        # npm's NAME@ with one of our ranges after it.
        ("left-pad@>=1.3.0", ("left-pad", ">=1.3.0")),
        ("@scope/name@>=2, <3", ("@scope/name", ">=2, <3")),
        ("left-pad@==1.3.0", ("left-pad", "==1.3.0")),
    ],
)
def test_parse_package(text: str, parsed: tuple[str, str]) -> None:
    assert parse_package(text) == parsed


@pytest.mark.parametrize("text", ["", "  ", "==0.9", ">=1"])
def test_a_package_without_a_name_is_an_argument_error(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected NAME or NAME==VERSION"):
        parse_package(text)


def codebeaker(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "codebeaker.client.cli", *map(str, args)],
        capture_output=True,
        env=environment(),
        timeout=60,
        check=False,
    )


@pytest.fixture
def service() -> Iterator[tuple[ScriptedService, str]]:
    scripted = ScriptedService()
    with serve(scripted) as address:
        yield scripted, address


def test_run_with_packages_puts_them_in_the_request(
    service: tuple[ScriptedService, str], tmp_path: Path
) -> None:
    scripted, address = service
    program = tmp_path / "main.py"
    program.write_bytes(b"import tabulate\n")
    done = codebeaker(
        "run", program, "--package", "tabulate>=0.9,<1", "--package", "six", "--address", address
    )
    assert done.returncode == 0, done.stderr
    (spec,) = scripted.specs
    assert wire(list(spec.packages)) == [("tabulate", ">=0.9,<1"), ("six", "")]


def test_run_refuses_an_empty_package_before_calling(
    service: tuple[ScriptedService, str], tmp_path: Path
) -> None:
    scripted, address = service
    program = tmp_path / "main.py"
    program.write_bytes(b"print(1)\n")
    done = codebeaker("run", program, "--package", "", "--address", address)
    assert done.returncode == 2  # argparse's usage error
    assert b"expected NAME or NAME==VERSION" in done.stderr
    assert scripted.specs == []
