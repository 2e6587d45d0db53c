"""An independent client in another language (Node.js), built only from proto/
and the standard google/rpc protos (for the details of a refused request)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]

from codebeaker.runtimes.catalog import Catalog
from tests.integration.conftest import Server
from tools.proto_deps import lay_out

pytestmark = pytest.mark.docker
CLIENT_DIR = Path(__file__).with_name("node_client")
PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"
# googleapis-common-protos installs google/rpc/*.proto beside its modules.
GOOGLE_PROTO_ROOT = Path(error_details_pb2.__file__).resolve().parents[2]


def node_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but node/npm are missing: the foreign-client check must run")
        pytest.skip("node and npm are needed for the foreign-client check")
    modules = CLIENT_DIR / "node_modules"
    if not all((modules / name).is_dir() for name in ("@grpc/grpc-js", "protobufjs")):
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CLIENT_DIR,
            check=True,
            timeout=300,
        )
    return CLIENT_DIR / "client.js"


@pytest.fixture(scope="session")
def proto_deps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The googleapis .proto files the contract imports (google/longrunning/...), laid
    out under their import names as `make proto` does, for the Node client's loader."""
    out = tmp_path_factory.mktemp("proto-deps")
    lay_out(PROTO_ROOT, out)
    return out


@pytest.fixture(scope="session")
def report(server: Server, proto_deps: Path) -> dict[str, Any]:
    """What the Node client saw of `server`: one run of its script."""
    script = node_client()
    roots = [str(PROTO_ROOT), str(proto_deps), str(GOOGLE_PROTO_ROOT)]
    done = subprocess.run(
        ["node", str(script), server.address, *roots],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    seen: dict[str, Any] = json.loads(done.stdout)
    return seen


def test_node_client_lists_executes_and_streams(report: dict[str, Any]) -> None:
    # One runtime per version: a language with a second version is listed twice.
    assert report["languages"] == sorted(spec.id for spec in Catalog.load().runtimes())
    assert report["execute"] == {"status": "EXECUTION_STATUS_OK", "stdout": "abab\n"}
    stream = report["stream"]
    assert stream["kinds"][0] == "started" and stream["kinds"][-1] == "result"
    assert stream["sequences"] == list(range(1, len(stream["kinds"]) + 1))
    assert stream["stdout"] == "streamed\n"
    assert stream["status"] == "EXECUTION_STATUS_OK"


def test_node_client_decodes_the_details_of_a_refused_request(report: dict[str, Any]) -> None:
    invalid = report["invalid"]
    assert invalid["code"] == 3  # INVALID_ARGUMENT
    status = invalid["status"]
    assert (status["code"], status["message"]) == (3, invalid["details"])
    by_type = {detail["type"]: detail for detail in status["details"]}
    info = by_type["google.rpc.ErrorInfo"]
    assert (info["reason"], info["domain"]) == ("PATH_INVALID", "codebeaker")
    (violation,) = by_type["google.rpc.BadRequest"]["field_violations"]
    assert violation["field"] == "spec.files[0].path"
    assert "inside the workspace" in violation["description"]
