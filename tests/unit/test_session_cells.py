"""Code cells through the whole server path: SessionService, the manager, the kernel
driver and the real kernels (run on this host by the fake agent, not in a sandbox)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from grpc import aio

from codebeaker.server.config import ServerConfig
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import session_pb2 as spb
from tests.unit.conftest import status_of
from tests.unit.fake_agent import FakeSessionBackend
from tests.unit.test_sessions import Served, create, serve, shut


@pytest.fixture
async def served(config: ServerConfig) -> AsyncIterator[Served]:
    running = await serve(config.with_values(session_spares=0), FakeSessionBackend())
    yield running
    await shut(running)


async def cell(
    served: Served, name: str, code: str, **limits: object
) -> tuple[bytes, bytes, list[spb.DisplayData], pb.ExecutionResult]:
    start = spb.ExecStart(session=name, code=code, limits=pb.ResourceLimits(**limits))  # type: ignore[arg-type]
    out, err, shown, result = b"", b"", [], pb.ExecutionResult()
    async for response in served.stub.Exec(iter([spb.ExecRequest(start=start)])):
        kind = response.WhichOneof("event")
        if kind == "output":
            if response.output.stream == pb.OUTPUT_STREAM_STDOUT:
                out += response.output.data
            else:
                err += response.output.data
        elif kind == "display":
            shown.append(response.display)
        elif kind == "result":
            result = response.result
    return out, err, shown, result


def plain(shown: list[spb.DisplayData]) -> list[bytes]:
    return [d.data for d in shown if d.mime_type == "text/plain"]


async def test_python_cells_keep_their_state_and_show_their_last_value(served: Served) -> None:
    name = (await create(served.stub)).name
    out, _, shown, result = await cell(served, name, "import math\nx = 6 * 7\nprint('set')")
    assert (out, shown, result.status) == (b"set\n", [], pb.EXECUTION_STATUS_OK)
    _, _, shown, _ = await cell(
        served, name, "def twice(v):\n    return 2 * v\ntwice(x) + math.floor(0.5)"
    )
    assert plain(shown) == [b"84"]
    _, _, shown, _ = await cell(
        served, name, "class T:\n    def _repr_html_(self):\n        return '<b>t</b>'\nT()"
    )
    assert {d.mime_type: d.data for d in shown}["text/html"] == b"<b>t</b>"


async def test_an_exception_keeps_the_interpreter_and_a_crash_restarts_it(served: Served) -> None:
    name = (await create(served.stub)).name
    await cell(served, name, "kept = 1")
    _, err, _, result = await cell(served, name, "1 / 0")
    assert result.status == pb.EXECUTION_STATUS_RUNTIME_ERROR
    assert b"ZeroDivisionError" in err and "ZeroDivisionError" in result.message
    _, _, shown, _ = await cell(served, name, "kept")
    assert plain(shown) == [b"1"]
    _, _, _, crashed = await cell(served, name, "import os\nos._exit(9)")
    assert crashed.status == pb.EXECUTION_STATUS_RUNTIME_ERROR and crashed.exit_code == 9
    assert "fresh one" in crashed.message
    _, err, _, fresh = await cell(served, name, "kept")
    assert fresh.status == pb.EXECUTION_STATUS_RUNTIME_ERROR and b"NameError" in err
    assert "fresh interpreter" in fresh.message


async def test_a_cell_past_its_wall_limit_is_interrupted_not_the_interpreter(
    served: Served,
) -> None:
    name = (await create(served.stub)).name
    await cell(served, name, "kept = 'still here'")
    _, _, _, result = await cell(
        served, name, "while True:\n    pass", wall_time=Duration(seconds=1)
    )
    assert result.status == pb.EXECUTION_STATUS_TIME_LIMIT_EXCEEDED
    _, _, shown, _ = await cell(served, name, "kept")
    assert plain(shown) == [b"'still here'"]


async def test_output_past_the_cap_is_cut_and_flagged(served: Served) -> None:
    name = (await create(served.stub)).name
    out, _, _, result = await cell(
        served,
        name,
        "import sys\nwhile True:\n    sys.stdout.write('x' * 1000)",
        max_output_bytes=5000,
    )
    assert len(out) == 5000 and result.stdout_truncated
    assert result.status == pb.EXECUTION_STATUS_OUTPUT_LIMIT_EXCEEDED


@pytest.mark.skipif(shutil.which("node") is None, reason="no node on this host")
async def test_javascript_cells_keep_their_state(served: Served) -> None:
    name = (await create(served.stub, language="javascript")).name
    await cell(served, name, "let total = 40; function add(v) { return total + v; }")
    out, _, shown, result = await cell(served, name, "console.log('hi'); add(2)")
    assert (out, plain(shown), result.status) == (b"hi\n", [b"42"], pb.EXECUTION_STATUS_OK)
    _, err, _, failed = await cell(served, name, "throw new TypeError('nope')")
    assert failed.status == pb.EXECUTION_STATUS_RUNTIME_ERROR and b"TypeError" in err


async def test_a_cell_takes_no_stdin(served: Served) -> None:
    name = (await create(served.stub)).name
    start = spb.ExecStart(session=name, code="1", stdin=b"x")
    with pytest.raises(aio.AioRpcError) as caught:
        async for _ in served.stub.Exec(iter([spb.ExecRequest(start=start)])):
            pass
    assert status_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_sdks_run_code_returns_the_value_text_and_html(served: Served) -> None:
    from codebeaker.client import AsyncClient

    address = f"127.0.0.1:{served.app.port}"
    async with AsyncClient(address) as client:
        session = await client.create_session("python")
        first = await session.run_code("import sys\nvalue = [1, 2]\nprint('out')\nvalue")
        assert (first.stdout, first.text, first.html, first.images) == (
            b"out\n",
            "[1, 2]",
            None,
            [],
        )
        failed = await session.run_code("raise ValueError('bad')")
        assert failed.status.name == "RUNTIME_ERROR" and b"ValueError" in failed.stderr
        await session.delete()
