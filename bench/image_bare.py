"""The image's own interpreter, bare: the floor for a program that runs in that image.

The host's interpreter is not always the image's: here the host has Node.js 20
while the image has Debian's Node.js 18, which starts several times slower. So one plain
container (no limits, no network) runs a small harness in the image's own
language that writes the program to /tmp and times, in a subprocess, the
command CodeBeaker runs (its spec.toml `run`), as `bare` does on the host.
Only the runs inside that one container are timed; its own start is not.
"""

from __future__ import annotations

import json

from bench.engine import api_client
from bench.programs import BENCH_LABEL, HELLO_OUTPUT, Program
from bench.stats import Measurement, Summary, Unavailable

_PYTHON_HARNESS = """
import json, subprocess, time
open("/tmp/{file}", "w").write({source!r})
env = {{"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}}
argv = {argv!r}
samples = []
for i in range({total}):
    start = time.perf_counter_ns()
    done = subprocess.run(argv, capture_output=True, env=env, cwd="/tmp")
    spent = (time.perf_counter_ns() - start) / 1e6
    if done.stdout != {expected!r}:
        raise SystemExit("unexpected output: %r %r" % (done.stdout, done.stderr))
    if i >= {warmup}:
        samples.append(spent)
print(json.dumps(samples))
"""

_NODE_HARNESS = """
const fs = require("fs"), cp = require("child_process");
fs.writeFileSync("/tmp/{file}", {source});
const env = {{PATH: "/usr/local/bin:/usr/bin:/bin", HOME: "/tmp", LANG: "C.UTF-8"}};
const samples = [];
for (let i = 0; i < {total}; i++) {{
  const start = process.hrtime.bigint();
  const done = cp.spawnSync({argv}[0], {argv}.slice(1), {{env, cwd: "/tmp"}});
  const spent = Number(process.hrtime.bigint() - start) / 1e6;
  if (done.stdout.toString() !== {expected}) {{
    console.error("unexpected output", done.stdout.toString(), done.stderr.toString());
    process.exit(1);
  }}
  if (i >= {warmup}) samples.push(spent);
}}
console.log(JSON.stringify(samples));
"""


def _harness(program: Program, warmup: int, runs: int) -> str:
    argv = program.command(f"/tmp/{program.file_name}")
    fields = {"file": program.file_name, "total": warmup + runs, "warmup": warmup}
    if program.interpreter == "python3":
        return _PYTHON_HARNESS.format(
            source=program.hello, expected=HELLO_OUTPUT, argv=argv, **fields
        )
    return _NODE_HARNESS.format(
        source=json.dumps(program.hello),
        expected=json.dumps(HELLO_OUTPUT.decode()),
        argv=json.dumps(argv),
        **fields,
    )


def measure_image_bare(program: Program, run_id: str, warmup: int, runs: int) -> Measurement:
    flag = "-c" if program.interpreter == "python3" else "-e"
    api = api_client()
    container = ""
    try:
        created = api.create_container(
            program.image,
            command=[program.interpreter, flag, _harness(program, warmup, runs)],
            network_disabled=True,
            labels={BENCH_LABEL: run_id},
            host_config=api.create_host_config(network_mode="none"),
        )
        container = str(created["Id"])
        api.start(container)
        status = api.wait(container, timeout=300)
        out = api.logs(container, stdout=True, stderr=False)
        if status["StatusCode"] != 0:
            err = api.logs(container, stdout=False, stderr=True)
            return Unavailable(f"harness exit {status['StatusCode']}: {err[-300:]!r}")
        samples = tuple(float(s) for s in json.loads(out))
        argv = " ".join(program.command(program.file_name))
        return Summary(samples, note=f"`{argv}` inside {program.image}")
    finally:
        if container:
            api.remove_container(container, force=True)
        api.close()
