"""Secrets and reach: nothing of the server's environment, no network in any form.

Isolation is proved only by what the sandbox can see (interfaces, routes,
resolver files, sockets on disk) and by trying services the test itself
listens on at the host's loopback. No case ever addresses anything but a
loopback address or resolves a name, so nothing can leave this machine even
if the sandbox were broken.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from codebeaker.runtimes.catalog import Catalog
from tests.integration.conftest import SERVER_SECRET
from tests.security.conftest import LANGUAGES, Sandbox
from tests.security.probes import ENGINE_PATHS

pytestmark = pytest.mark.docker
BASE_ENV = {"PATH", "HOME", "TMPDIR", "LANG"}


@pytest.mark.parametrize("language", LANGUAGES)
def test_environment_holds_only_allowed_variables(sandbox: Sandbox, language: str) -> None:
    report = sandbox.probe("environment", language, env={"MINE": "yes"})
    env = report["env"]
    assert isinstance(env, dict)
    allowed = BASE_ENV | set(Catalog.load().resolve(language).env) | {"MINE"}
    assert set(env) <= allowed, env
    assert env["MINE"] == "yes"
    assert SERVER_SECRET not in json.dumps(report)  # not even in PID 1's environment


@pytest.mark.parametrize("language", LANGUAGES)
def test_loopback_is_the_only_interface(sandbox: Sandbox, language: str, isolation: str) -> None:
    report = sandbox.probe("interfaces", language)
    # A host's run has its own network namespace whose lo is down and has no
    # address under runc (Node lists only interfaces with one); gVisor's is up.
    assert report["proc_net_dev"] == ["lo"]
    if isolation == "host" and language == "javascript":
        assert report["interfaces"] in ([], ["lo"])
    else:
        assert report["interfaces"] == ["lo"]


def test_no_routes_and_no_resolver(sandbox: Sandbox) -> None:
    report = sandbox.probe("routes_and_names")
    assert report["ipv4_routes"] == 0
    assert set(report["ipv6_route_devices"]) <= {"lo"}
    assert report["nameservers"] == []
    for entry in report["hosts"]:
        assert ipaddress.ip_address(entry[0]).is_loopback, entry


def test_no_raw_or_packet_sockets(sandbox: Sandbox) -> None:
    report = sandbox.probe("raw_sockets")
    kinds = ["inet_raw_icmp", "inet_raw_raw", "inet6_raw_icmp", "packet_raw", "packet_dgram"]
    assert report == dict.fromkeys(kinds, "EPERM")


def test_no_raw_sockets_even_in_a_user_namespace(
    sandbox: Sandbox, runtime: str, request: pytest.FixtureRequest
) -> None:
    report = sandbox.probe("raw_sockets_in_userns")
    assert report == {"unshare": "EPERM", "inet_raw_icmp": "EPERM", "packet_raw": "EPERM"}


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_container_engine_socket(sandbox: Sandbox, language: str) -> None:
    report = sandbox.probe("engine_sockets", language)
    assert report == {**dict.fromkeys(ENGINE_PATHS, False), "unix_sockets": []}


@dataclass
class HostListeners:
    """Services on the host's loopback that the sandbox must not reach."""

    tcp: socket.socket
    udp: socket.socket
    abstract: socket.socket
    abstract_name: str

    def received(self) -> list[str]:
        got = []
        for name, listener in (("tcp", self.tcp), ("abstract", self.abstract)):
            with contextlib.suppress(BlockingIOError):
                listener.accept()[0].close()
                got.append(name)
        with contextlib.suppress(BlockingIOError):
            got.append(f"udp {self.udp.recv(4096)!r}")
        return got


@pytest.fixture
def host_listeners() -> Iterator[HostListeners]:
    name = f"codebeaker-security-{secrets.token_hex(8)}"
    with (
        socket.create_server(("127.0.0.1", 0)) as tcp,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as abstract,
    ):
        udp.bind(("127.0.0.1", 0))
        abstract.bind("\0" + name)
        abstract.listen()
        for listener in (tcp, udp, abstract):
            listener.setblocking(False)
        yield HostListeners(tcp, udp, abstract, name)


@pytest.mark.parametrize("language", LANGUAGES)
def test_host_loopback_services_are_unreachable(
    sandbox: Sandbox, host_listeners: HostListeners, language: str, isolation: str
) -> None:
    tcp_ports = [sandbox.server.port, host_listeners.tcp.getsockname()[1]]
    args = [*map(str, tcp_ports), str(host_listeners.udp.getsockname()[1])]
    report = sandbox.probe("host_loopback", language, args=[*args, host_listeners.abstract_name])
    # The sandbox's own lo refuses; a host's run under runc has no network at all
    # (its lo is down); gVisor's nested network namespace has an lo of its own.
    refused = {"ENETUNREACH", "ECONNREFUSED"} if isolation == "host" else {"ECONNREFUSED"}
    for port in tcp_ports:
        assert report.pop(f"tcp 127.0.0.1:{port}") in refused
        assert report.pop(f"tcp [::1]:{port}") in refused | {"ECONNREFUSED", "EADDRNOTAVAIL"}
    assert report == {"abstract": "ECONNREFUSED", "abstract_listed": False}
    assert host_listeners.received() == []
