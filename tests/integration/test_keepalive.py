"""A caller that vanishes mid-call (its machine gone: no FIN, no RST) loses its
sandbox within seconds, not at the wall limit: the real `codebeaker serve` over
real Docker, behind a loopback proxy the test turns into a blackhole.

The program sleeps for a minute under a 60 s wall limit, so only the server's
keepalive (1 s pings, 1 s to answer here) can end it within the bound.
"""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc
from tests.integration.conftest import (
    our_containers,
    start_server,
    stop_server,
    wait_until_gone,
)
from tests.integration.programs import PROGRAMS
from tests.proxy import LoopbackProxy

pytestmark = pytest.mark.docker
KEEPALIVE_TIME = 1.0
KEEPALIVE_TIMEOUT = 1.0
SLACK = 4.0  # the cancellation's kill and remove, and a loaded machine


@pytest.mark.parametrize("runtime", ["runc", "runsc"])
def test_a_vanished_callers_sandbox_is_removed_within_keepalive(runtime: str) -> None:
    server = start_server(
        *("--runtime", runtime, "--pool-size", "0"),
        *("--keepalive-time", str(KEEPALIVE_TIME), "--keepalive-timeout", str(KEEPALIVE_TIMEOUT)),
    )
    try:
        with LoopbackProxy(server.address) as proxy:
            # A plain channel: no keepalive of the caller's own to notice anything.
            channel = grpc.insecure_channel(proxy.address)
            spec = pb.ExecutionSpec(
                language="python",
                source=PROGRAMS["python"]["hostname"].encode(),
                limits=pb.ResourceLimits(wall_time=Duration(seconds=60)),
            )
            call = pb_grpc.ExecutionServiceStub(channel).ExecuteStream(
                pb.ExecuteStreamRequest(spec=spec), timeout=120
            )
            hostname = ""
            for event in call:
                if event.WhichOneof("event") == "output":
                    hostname = event.output.data.decode().strip()
                    break
            assert hostname and any(c.startswith(hostname) for c in our_containers(server.instance))

            proxy.blackhole()
            vanished = time.monotonic()
            bound = KEEPALIVE_TIME + KEEPALIVE_TIMEOUT + SLACK
            assert wait_until_gone(server.instance, hostname, within=bound + 5)
            assert time.monotonic() - vanished < bound
            call.cancel()
            channel.close()
        assert any("execution.cancelled" in line for line in server.log)
    finally:
        assert stop_server(server) == 0
