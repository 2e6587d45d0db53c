"""A client-only install: this repository installed without extras into a fresh venv.

That is how an application gets the SDK (`pip install /path/to/checkout`), so
it is tested the way an application would use it: a new virtualenv, pip with
the constraints file, then the `codebeaker` command and the SDK from there
against the real server. The install must work without the server's
dependencies and must never import them: an application should not get the
Docker SDK, the OpenTelemetry SDK or prometheus-client by using the client.

The venv is made once for the module (pip's cache makes the install a matter
of seconds after the first time); the sources are copied first so that the
build never writes into the working tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import Server

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
# Never part of a source install (and some are large).
NOT_SOURCES = {
    ".git",
    ".venv",
    ".typecheck",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".import_linter_cache",
    "__pycache__",
    "node_modules",
    "build",
    "dist",
    "bench",
    "tests",
}
# Top-level modules of the server's dependencies, and our own server half.
SERVER_ONLY = (
    "docker",
    "prometheus_client",
    "grpc_health",
    "grpc_reflection",
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "codebeaker.server",
    "codebeaker.runtimes",
)
NEEDS_SERVER = "pip install 'codebeaker[server]'"


@dataclass(frozen=True)
class ClientInstall:
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(
        self, argv: Sequence[str | Path], cwd: Path, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        # Nothing of our own venv may leak in: only the new venv's python and paths.
        environ = {
            key: value
            for key, value in os.environ.items()
            if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
            and not key.startswith("CODEBEAKER_")
        }
        return subprocess.run(
            [str(part) for part in argv],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=timeout,
            check=False,
            env=environ,
        )

    def pip(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        # Our venv's pip, acting on the new venv: the new one needs no pip of its own.
        return self.run([sys.executable, "-m", "pip", "--python", self.python, *args], cwd)


def _ignore(directory: str, names: list[str]) -> set[str]:
    return {name for name in names if name in NOT_SOURCES or name.endswith(".egg-info")}


@pytest.fixture(scope="module")
def client_install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClientInstall]:
    work = tmp_path_factory.mktemp("client-install")
    source = work / "codebeaker"
    shutil.copytree(ROOT, source, ignore=_ignore, symlinks=True)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=60)
    install = ClientInstall(venv)
    done = install.pip(
        "install", "--quiet", "-c", str(ROOT / "constraints.txt"), str(source), cwd=work
    )
    assert done.returncode == 0, done.stdout + done.stderr
    yield install


def test_codebeaker_run_works_from_a_client_only_install(
    client_install: ClientInstall, server: Server, tmp_path: Path
) -> None:
    program = tmp_path / "hello.py"
    program.write_text("print('hello, world')\nraise SystemExit(3)\n")
    codebeaker = client_install.venv / "bin" / "codebeaker"
    done = client_install.run([codebeaker, "run", program, "--address", server.address], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (3, "hello, world\n", "")


SDK_CALL = """
import json, sys
from codebeaker.client import Client

with Client(sys.argv[1], timeout=60) as client:
    result = client.execute("python", "print(6 * 7)")
print(json.dumps({
    "status": result.status.name,
    "stdout": result.stdout.decode(),
    "modules": sorted(sys.modules),
}))
"""


def test_the_sdk_runs_without_importing_the_servers_dependencies(
    client_install: ClientInstall, server: Server, tmp_path: Path
) -> None:
    done = client_install.run([client_install.python, "-c", SDK_CALL, server.address], tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["status"], report["stdout"]) == ("OK", "42\n")
    assert "grpc" in report["modules"]  # the report is real: the SDK's own imports are there
    imported = [m for m in report["modules"] if m.startswith(SERVER_ONLY)]
    assert imported == []


SDK_SUBMIT = """
import json, sys
from codebeaker.client import Client

with Client(sys.argv[1], timeout=60) as client:
    operation = client.submit("python", "print(6 * 7)", request_id=sys.argv[2])
    result = operation.wait(timeout=120)
    again = client.submit("python", "print(6 * 7)", request_id=sys.argv[2])
print(json.dumps({
    "state": operation.state.name,
    "same": again.name == operation.name,
    "stdout": result.stdout.decode(),
    "modules": sorted(sys.modules),
}))
"""


def test_submit_and_wait_work_from_a_client_only_install(
    client_install: ClientInstall, server: Server, tmp_path: Path
) -> None:
    program = tmp_path / "hello.py"
    program.write_text("print('hello, world')\nraise SystemExit(3)\n")
    codebeaker = client_install.venv / "bin" / "codebeaker"
    address = ["--address", server.address]
    submitted = client_install.run([codebeaker, "submit", program, *address], tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    name = submitted.stdout.strip()
    assert name.startswith("operations/") and "\n" not in name
    done = client_install.run([codebeaker, "wait", name, "--timeout", "120", *address], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (3, "hello, world\n", "")
    shown = client_install.run(
        [client_install.python, "-m", "codebeaker.client", "operations", "get", name, *address],
        tmp_path,
    )
    assert "state: SUCCEEDED" in shown.stdout.splitlines(), shown.stdout + shown.stderr

    key = f"install-{tmp_path.name}"
    done = client_install.run(
        [client_install.python, "-c", SDK_SUBMIT, server.address, key], tmp_path
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["state"], report["same"], report["stdout"]) == ("SUCCEEDED", True, "42\n")
    assert [m for m in report["modules"] if m.startswith(SERVER_ONLY)] == []


def test_the_servers_dependencies_are_not_installed(
    client_install: ClientInstall, tmp_path: Path
) -> None:
    shown = client_install.pip("show", "docker", cwd=tmp_path)
    assert shown.returncode != 0 and "not found" in shown.stderr.lower(), shown
    shown = client_install.pip("show", "codebeaker", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    requires = next(line for line in shown.stdout.splitlines() if line.startswith("Requires:"))
    assert "docker" not in requires and "prometheus" not in requires, requires
    probe = (
        "import importlib.util, sys; "
        f"sys.exit(any(importlib.util.find_spec(m) for m in {['docker', 'prometheus_client']!r}))"
    )
    assert client_install.run([client_install.python, "-c", probe], tmp_path).returncode == 0


def test_the_installed_package_carries_its_license(
    client_install: ClientInstall, tmp_path: Path
) -> None:
    read = (
        "from importlib import metadata; m = metadata.metadata('codebeaker'); "
        "print(m['License-Expression']); print(*m.get_all('License-File'))"
    )
    done = client_install.run([client_install.python, "-c", read], tmp_path)
    assert done.stdout.split() == ["Apache-2.0", "LICENSE"], done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["serve"],
        ["serve", "--address", "127.0.0.1:0", "--pool-size", "0"],
        ["images", "build"],
        ["tenants", "--help"],
    ],
)
def test_the_server_commands_say_which_extra_they_need(
    client_install: ClientInstall, tmp_path: Path, argv: list[str]
) -> None:
    codebeaker = client_install.venv / "bin" / "codebeaker"
    done = client_install.run([codebeaker, *argv], tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and NEEDS_SERVER in lines[0], done.stderr
    assert lines[0].startswith(f"codebeaker {argv[0]}: ")


def test_help_still_lists_every_command(client_install: ClientInstall, tmp_path: Path) -> None:
    done = client_install.run([client_install.venv / "bin" / "codebeaker", "--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    for command in ("run", "runtimes", "serve", "images", "tenants"):
        assert f"\n    {command} " in done.stdout, done.stdout
