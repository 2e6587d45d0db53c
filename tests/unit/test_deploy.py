"""deploy/ and the install path: the compose file, Prometheus config, dashboard,
the server image's Dockerfile, the dependency pins, and the venv script.

The images of the stack cannot be pulled on our machines, so the stack is
checked by the tools that read these files (`docker-compose config`,
`promtool check config`) and the dashboard against the server's own metric
registry: every CodeBeaker family is on it, and it asks for nothing the
server does not export (its queries run against a real Prometheus in
tests/integration/test_prometheus.py). The image's health check runs as the
container would run it, against a real in-process server; the venv script
runs against real, deliberately half-made virtualenvs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from prometheus_client import Metric

from codebeaker.server.admission import Admission
from codebeaker.server.config import ServerConfig
from codebeaker.server.metrics import Metrics
from tests.tools import require
from tests.unit.conftest import Running, start_server
from tests.unit.fake_sandbox import FakeSandbox
from tests.unit.test_service import wait_for_health

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def compose_config(**variables: str) -> str:
    compose = require("docker-compose")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CODEBEAKER_")}
    done = subprocess.run(
        [compose, "-f", str(DEPLOY / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**environ, **variables},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_compose_file_is_valid() -> None:
    config = compose_config(
        CODEBEAKER_BASE_IMAGE="codebeaker/debian:trixie", CODEBEAKER_DOCKER_GID="105"
    )
    for service in ("codebeaker:", "prometheus:", "grafana:", "jaeger:"):
        assert service in config
    assert "/var/run/docker.sock" in config
    assert "OTEL_EXPORTER_OTLP_ENDPOINT: http://jaeger:4317" in config
    assert "BASE_IMAGE: codebeaker/debian:trixie" in config
    assert "DOCKER_GID: '105'" in config
    assert "pull_policy: build" in config


def registry_of(image: str) -> str:
    """The registry Docker would pull `image` from (docker.io when it names none)."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def build_arg_default(name: str) -> str | None:
    """The default of the first `ARG name[=default]`; None when it has none."""
    match = re.search(rf"^ARG {name}(?:=(\S*))?$", dockerfile(), re.MULTILINE)
    assert match, f"no ARG {name}"
    return match.group(1)


def test_the_server_image_never_falls_back_to_a_docker_hub_base() -> None:
    # Unset, the base names a registry that cannot resolve (RFC 6761 .invalid):
    # the build stops instead of pulling whatever someone published under our name.
    default = build_arg_default("BASE_IMAGE")
    assert default is not None
    assert registry_of(default).endswith(".invalid"), default
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", dockerfile(), re.MULTILINE)
    assert f"BASE_IMAGE: {default}" in compose_config()
    assert registry_of("codebeaker/debian:trixie") == "docker.io"  # why it is no default


def test_the_server_runs_unprivileged_in_the_docker_sockets_group() -> None:
    text = dockerfile()
    assert build_arg_default("DOCKER_GID") is None  # no guess: each host's gid differs
    assert "DOCKER_GID: ''" in compose_config()  # unset, the build says what to pass
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users, "the image runs as root"
    uid = users[-1]
    # A numeric uid (runAsNonRoot can check it) and no group: `USER uid:gid`
    # would run without the supplementary groups, the socket's among them.
    assert uid.isdigit() and int(uid) != 0, users
    useradd = re.search(r"useradd [^&]*", text)
    assert useradd, "no user is made"
    assert f"--uid {uid}" in useradd.group(0)
    assert '--groups "${DOCKER_GID}"' in useradd.group(0)
    assert 'groupadd --system --gid "${DOCKER_GID}"' in text


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_server_image_is_labelled() -> None:
    labels = dict(re.findall(r"(org\.opencontainers\.image\.[a-z.]+)=\"([^\"]*)\"", dockerfile()))
    project = pyproject()["project"]
    assert isinstance(project, dict)
    assert labels["org.opencontainers.image.licenses"] == project["license"] == "Apache-2.0"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert build_arg_default("VERSION") == project["version"]
    assert labels["org.opencontainers.image.base.name"] == "${BASE_IMAGE}"
    for key in ("title", "description", "revision"):
        assert labels[f"org.opencontainers.image.{key}"], key


def test_the_server_image_installs_the_server_with_the_pinned_versions() -> None:
    text = dockerfile()
    copied = re.search(r"^COPY (.*) /src/$", text, re.MULTILINE)
    assert copied, "the sources are not copied"
    assert {"pyproject.toml", "LICENSE", "constraints.txt"} <= set(copied.group(1).split())
    assert "pip install --no-cache-dir -c /src/constraints.txt '/src[server]'" in text


def healthcheck_argv() -> list[str]:
    match = re.search(r"^HEALTHCHECK .*?CMD (\[.*?\])$", dockerfile(), re.MULTILINE | re.DOTALL)
    assert match, "no HEALTHCHECK"
    argv = json.loads(match.group(1))
    assert isinstance(argv, list) and argv[0] == "python3", argv
    return [sys.executable, *argv[1:]]  # the image's python3 is its venv's


async def run_healthcheck(address: str) -> int:
    process = await asyncio.create_subprocess_exec(
        *healthcheck_argv(), env={**os.environ, "CODEBEAKER_ADDRESS": address}
    )
    async with asyncio.timeout(30):
        return await process.wait()


async def test_the_healthcheck_passes_only_while_the_server_serves(config: ServerConfig) -> None:
    ready = await start_server(config, FakeSandbox())
    unready = await start_server(config, FakeSandbox(unready="no Docker engine"))
    try:
        await wait_for_health(ready.channel, 1)  # SERVING
        # As in the image: it listens on 0.0.0.0, the check asks over loopback.
        assert await run_healthcheck(f"0.0.0.0:{ready.app.port}") == 0
        assert await run_healthcheck(f"0.0.0.0:{unready.app.port}") == 1
    finally:
        await stop(ready)
        await stop(unready)
    assert await run_healthcheck(f"0.0.0.0:{ready.app.port}") == 1  # nobody answers


async def stop(server: Running) -> None:
    server.sandbox.release()
    await server.channel.close()
    await server.app.stop()


def requirements() -> tuple[list[Requirement], dict[str, list[Requirement]]]:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    extras = project["optional-dependencies"]
    base = [Requirement(line) for line in project["dependencies"]]
    return base, {name: [Requirement(line) for line in lines] for name, lines in extras.items()}


def pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pinned = [line.split("==") for line in lines if line and not line.startswith("#")]
    assert all(len(pin) == 2 for pin in pinned), "constraints.txt pins exact versions only"
    return {canonicalize_name(name): version for name, version in pinned}


def test_the_package_asks_for_ranges_and_constraints_pin_them() -> None:
    base, extras = requirements()
    pinned = pins()
    for requirement in [*base, *extras["server"]]:
        assert not any(s.operator in ("==", "===") for s in requirement.specifier), requirement
        version = pinned.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name} has no pin in constraints.txt"
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)
    names = {canonicalize_name(r.name) for r in base}
    # The SDK's install stays light: none of the server's own dependencies.
    assert names.isdisjoint(canonicalize_name(r.name) for r in extras["server"])
    assert {"docker", "prometheus-client", "opentelemetry-sdk"}.isdisjoint(names)
    assert {"grpcio-status", "googleapis-common-protos", "opentelemetry-api"} <= names
    assert next(r for r in extras["dev"] if r.name == "codebeaker").extras == {"server"}
    assert (ROOT / "LICENSE").read_text().split()[:3] == ["Apache", "License", "Version"]


def test_every_install_of_ours_uses_the_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install" in line and "-e" in line]
    assert installs and all("-c constraints.txt" in line for line in installs), installs
    assert "-c /src/constraints.txt" in dockerfile()
    assert "make test" in (ROOT / ".ci/run").read_text()  # CI installs through make


ENSURE_VENV = ROOT / "scripts/ensure-venv.sh"


def ensure_venv(*args: str) -> subprocess.CompletedProcess[str]:
    python = Path(sys.base_prefix) / "bin" / "python3"  # a real interpreter, not our venv's
    return subprocess.run(
        ["bash", str(ENSURE_VENV), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHON": str(python)},
    )


def test_a_half_made_venv_is_rebuilt_and_a_working_one_left_alone(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # What `python3 -m venv` leaves on Debian without python3-venv: no pip.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    assert ensure_venv("--check", str(venv)).returncode == 1
    assert (venv / "bin/python").exists()  # --check changes nothing
    done = ensure_venv(str(venv))
    assert done.returncode == 0, done.stderr
    assert "half-made" in done.stderr
    subprocess.run([str(venv / "bin/python"), "-c", "import pip"], check=True)
    (venv / "kept").touch()
    again = ensure_venv(str(venv))
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert (venv / "kept").exists()
    assert ensure_venv("--check", str(venv)).returncode == 0
    (venv / "bin/python").unlink()  # an interpreter gone
    assert ensure_venv("--check", str(venv)).returncode == 1


def test_a_missing_interpreter_is_one_sentence_saying_what_to_install(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(ENSURE_VENV), str(tmp_path / "venv")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHON": "python3-that-does-not-exist"},
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "install Python 3.11 or newer" in lines[0], done.stderr
    assert not (tmp_path / "venv").exists()


def test_the_prometheus_config_is_valid() -> None:
    promtool = require("promtool")
    done = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / "prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def exported_series() -> dict[str, set[str]]:
    """Family name -> the series names it exports, from a server's registry."""
    metrics = Metrics()
    metrics.watch(Admission(1, 1.0), FakeSandbox().pool_stats)
    families: list[Metric] = list(metrics.registry.collect())
    return {
        family.name: {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
        for family in families
    }


def test_the_dashboard_shows_every_codebeaker_metric_and_only_real_ones() -> None:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/codebeaker.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    used = set(re.findall(r"\b((?:codebeaker|grpc_server|process)_[a-z_]+)\b", " ".join(queries)))
    exported = exported_series()
    known = set().union(*exported.values())
    assert used - known == set()
    ours = [name for name in exported if name.startswith(("codebeaker_", "grpc_server_"))]
    assert len(ours) >= 18
    assert [name for name in ours if not exported[name] & used] == []


def test_grafana_is_provisioned_with_the_dashboard_and_both_data_sources() -> None:
    sources = (DEPLOY / "grafana/provisioning/datasources/datasources.yaml").read_text()
    assert "type: prometheus" in sources and "type: jaeger" in sources
    dashboards = (DEPLOY / "grafana/provisioning/dashboards/dashboards.yaml").read_text()
    assert "path: /var/lib/grafana/dashboards" in dashboards
    panels = json.loads((DEPLOY / "grafana/dashboards/codebeaker.json").read_text())["panels"]
    assert all(t["datasource"]["uid"] == "prometheus" for p in panels for t in p.get("targets", []))
