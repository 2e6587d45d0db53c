"""The curated packages baked into the Python and JavaScript images, on real
sandboxes under runc and gVisor: they import and compute in one-shot runs,
matplotlib draws headless as uid 65534 on the read-only root, and ListRuntimes
reports every package with the version its image recorded.

The servers serve only python and javascript, so the suite runs against
images built for just those two (`codebeaker images build --image-tag T
--language python --language javascript`, then CODEBEAKER_IMAGE_TAG=T)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
from collections.abc import Iterator

import pytest
from google.protobuf.duration_pb2 import Duration

from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc
from tests.integration.conftest import SERVER_KINDS, Server, run, start_server, stop_server

pytestmark = pytest.mark.docker

PYTHON_PACKAGES = {
    "numpy": "numpy",
    "pandas": "pandas",
    "scipy": "scipy",
    "matplotlib": "matplotlib",
    "pillow": "PIL",
    "requests": "requests",
    "beautifulsoup4": "bs4",
    "pytest": "pytest",
    "flask": "flask",
    "django": "django",
}
NPM_PACKAGES = (
    "lodash",
    "axios",
    "moment",
    "express",
    "react",
    "vue",
    "jest",
    "mocha",
    "chalk",
    "commander",
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", params=list(SERVER_KINDS))
def packaged(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A server of each kind (runc and runsc hosts, runc cold) serving the two languages."""
    running = start_server(*SERVER_KINDS[request.param], "--languages", "python,javascript")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def stub(packaged: Server) -> pb_grpc.ExecutionServiceStub:
    return packaged.stub()


def seconds(value: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(int(value * 1e9))
    return duration


def listed(stub: pb_grpc.ExecutionServiceStub) -> dict[str, dict[str, str]]:
    """Each language's default version's packages."""
    runtimes = stub.ListRuntimes(pb.ListRuntimesRequest(), timeout=10).runtimes
    return {r.language: {p.name: p.version for p in r.packages} for r in runtimes if r.is_default}


def ok(result: pb.ExecutionResult) -> str:
    detail = f"{result.message}\n{result.stderr.decode(errors='replace')}"
    assert result.status == pb.EXECUTION_STATUS_OK, detail
    return result.stdout.decode()


def test_numpy_and_pandas_import_and_compute_in_a_one_shot_run(
    stub: pb_grpc.ExecutionServiceStub,
) -> None:
    program = """\
import numpy as np
import pandas as pd
a = np.arange(12, dtype=float).reshape(3, 4)
print(int(a.sum()), np.linalg.matrix_rank(a))
frame = pd.DataFrame({"city": ["a", "b", "a", "c"], "n": [1, 2, 3, 4]})
print(frame.groupby("city")["n"].sum().to_dict())
print(frame.describe().loc["mean", "n"])
"""
    result = run(stub, "python", program)  # the default limits
    assert ok(result).splitlines() == ["66 2", "{'a': 4, 'b': 2, 'c': 4}", "2.5"]
    assert result.stderr == b""


def test_every_curated_python_package_imports(stub: pb_grpc.ExecutionServiceStub) -> None:
    program = f"""\
import importlib, importlib.metadata, json
modules = {PYTHON_PACKAGES!r}
for module in modules.values():
    importlib.import_module(module)
import scipy.optimize, scipy.stats
assert abs(scipy.optimize.brentq(lambda x: x * x - 2, 0, 2) - 2 ** 0.5) < 1e-9
from bs4 import BeautifulSoup
assert BeautifulSoup("<p>hi</p>", "html.parser").p.text == "hi"
print(json.dumps({{name: importlib.metadata.version(name) for name in modules}}))
"""
    limits = pb.ResourceLimits(wall_time=seconds(60), cpu_time=seconds(60))
    result = run(stub, "python", program, limits=limits)
    assert json.loads(ok(result)) == listed(stub)["python"]


def test_matplotlib_saves_a_png_as_nobody_on_the_read_only_root(
    stub: pb_grpc.ExecutionServiceStub,
) -> None:
    program = """\
import errno, glob, os
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(4, 3), dpi=50)
ax.plot([0, 1, 2, 3], [0, 1, 4, 9])
ax.set_title("squares")
plt.savefig("x.png")
try:
    open("/usr/local/share/codebeaker/matplotlib/probe", "w")
except OSError as error:
    print("cannot write", error.errno in (errno.EROFS, errno.EACCES))
print("read-only root", bool(os.statvfs("/").f_flag & os.ST_RDONLY))
print(os.getuid(), plt.get_backend().lower())
print(sorted(os.listdir(".")), glob.glob("/tmp/matplotlib-*"))
"""
    limits = pb.ResourceLimits(wall_time=seconds(30), cpu_time=seconds(30))
    result = run(stub, "python", program, limits=limits, output_files=["x.png"])
    assert ok(result).splitlines() == [
        "cannot write True",
        "read-only root True",
        "65534 agg",
        "['main.py', 'x.png'] []",  # no font cache made, none in the workspace
    ]
    assert result.stderr == b""  # no "created a temporary config/cache directory"
    (png,) = result.files
    assert png.status == pb.OUTPUT_FILE_STATUS_OK
    assert png.content.startswith(PNG_MAGIC)
    assert png.content[12:16] == b"IHDR"
    assert struct.unpack(">II", png.content[16:24]) == (200, 150)


def test_require_lodash_and_every_curated_npm_package(stub: pb_grpc.ExecutionServiceStub) -> None:
    program = f"""\
const _ = require('lodash');
console.log(JSON.stringify(_.chunk([1, 2, 3, 4, 5], 2)));
for (const name of {json.dumps(list(NPM_PACKAGES))}) require(name);
const {{ createSSRApp, h }} = require('vue');
const {{ renderToString }} = require('vue/server-renderer');
renderToString(createSSRApp({{ render: () => h('p', 'vue') }})).then((html) => {{
  console.log(html, require('moment').utc(0).format('YYYY-MM-DD'));
}});
"""
    limits = pb.ResourceLimits(wall_time=seconds(30), cpu_time=seconds(30))
    result = run(stub, "javascript", program, limits=limits)
    assert ok(result).splitlines() == ["[[1,2],[3,4],[5]]", "<p>vue</p> 1970-01-01"]


def test_an_es_module_imports_them_too(stub: pb_grpc.ExecutionServiceStub) -> None:
    program = b"""\
import _ from 'lodash';
import chalk from 'chalk';
import { Command } from 'commander';
console.log(_.sum([1, 2, 3]), typeof chalk.red, typeof Command);
"""
    files = [pb.File(path="main.mjs", content=program)]
    result = run(stub, "javascript", b"", files=files, entrypoint="main.mjs")
    assert ok(result) == "6 function function\n"


def test_list_runtimes_lists_the_packages_with_versions(
    stub: pb_grpc.ExecutionServiceStub,
) -> None:
    found = listed(stub)
    assert set(found["python"]) == set(PYTHON_PACKAGES)
    assert set(found["javascript"]) == set(NPM_PACKAGES)
    for packages in found.values():
        assert all(version[0].isdigit() for version in packages.values()), packages
    runtimes = stub.ListRuntimes(pb.ListRuntimesRequest(), timeout=10).runtimes
    names = [[p.name for p in r.packages] for r in runtimes]
    assert all(each == sorted(each) for each in names)
    # What the image builder recorded, read from the image as the server reads it.
    tag = os.environ.get("CODEBEAKER_IMAGE_TAG", "")
    image = f"codebeaker/python:{tag}" if tag else "codebeaker/python"
    label = subprocess.run(
        [
            "docker",
            "image",
            "inspect",
            "--format",
            '{{index .Config.Labels "io.codebeaker.packages"}}',
            image,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(label) == found["python"]
