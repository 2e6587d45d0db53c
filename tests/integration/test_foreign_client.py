"""An independent client in another language (Node.js), built only from proto/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from codebeaker.runtimes.catalog import Catalog
from tests.integration.conftest import Server

pytestmark = pytest.mark.docker
CLIENT_DIR = Path(__file__).with_name("node_client")
PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"


def node_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but node/npm are missing: the foreign-client check must run")
        pytest.skip("node and npm are needed for the foreign-client check")
    if not (CLIENT_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CLIENT_DIR,
            check=True,
            timeout=300,
        )
    return CLIENT_DIR / "client.js"


def test_node_client_lists_executes_and_streams(server: Server) -> None:
    script = node_client()
    done = subprocess.run(
        ["node", str(script), server.address, str(PROTO_ROOT)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    assert report["languages"] == sorted(spec.id for spec in Catalog.load().specs())
    assert report["execute"] == {"status": "EXECUTION_STATUS_OK", "stdout": "abab\n"}
    stream = report["stream"]
    assert stream["kinds"][0] == "started" and stream["kinds"][-1] == "result"
    assert stream["sequences"] == list(range(1, len(stream["kinds"]) + 1))
    assert stream["stdout"] == "streamed\n"
    assert stream["status"] == "EXECUTION_STATUS_OK"
