"""Runs the peer workers and turns their JSON into summaries.

epicbox runs from bench/.venv-peers, llm-sandbox from our own venv (the `bench`
extra). Each worker is a subprocess in its own session, so a Ctrl-C reaches
the bench alone; the bench then sends it SIGTERM, which it turns into a clean
teardown of the peer's containers.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from importlib import util
from pathlib import Path

from bench.peers_env import peers_python
from bench.programs import ENTRYPOINT, Program
from bench.stats import Measurement, Summary, Unavailable

REPO = Path(__file__).resolve().parent.parent
WORKER_TIMEOUT = 300.0


@dataclass(frozen=True)
class PeerCase:
    key: str  # figure id in the results
    label: str
    module: str
    mode: str = ""
    comparable: bool = True  # single-use containers, like CodeBeaker


CASES = (
    PeerCase("epicbox", "epicbox 1.1.0 (run per program)", "bench.workers.epicbox_worker"),
    PeerCase(
        "llm_sandbox",
        "llm-sandbox 0.3.46 (session per program)",
        "bench.workers.llm_sandbox_worker",
        "oneshot",
    ),
    PeerCase(
        "llm_sandbox_pooled",
        "llm-sandbox 0.3.46 pooled (REUSES containers)",
        "bench.workers.llm_sandbox_worker",
        "pooled",
        comparable=False,
    ),
)


def _interpreter(case: PeerCase) -> Path:
    if case.key == "epicbox":
        return peers_python()
    if util.find_spec("llm_sandbox") is None:
        raise RuntimeError("llm-sandbox is not installed: pip install -e '.[bench]'")
    return Path(sys.executable)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM first: the worker turns it into a teardown of its containers."""
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def run_peer(
    case: PeerCase, program: Program, *, run_id: str, warmup: int, runs: int
) -> Measurement:
    try:
        python = _interpreter(case)
    except (RuntimeError, subprocess.SubprocessError, OSError) as error:
        return Unavailable(f"cannot set up {case.label}: {error}")
    argv = [
        str(python),
        "-m",
        case.module,
        "--language",
        program.language,
        "--warmup",
        str(warmup),
        "--runs",
        str(runs),
        "--run-id",
        run_id,
        "--mode",
        case.mode,
        "--run",
        json.dumps(program.command(ENTRYPOINT)),
    ]
    process = subprocess.Popen(
        argv,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        _stop(process)
        return Unavailable(f"{case.label} took longer than {WORKER_TIMEOUT:.0f} s")
    except BaseException:
        _stop(process)
        raise
    lines = stdout.decode(errors="replace").strip().splitlines()
    if process.returncode != 0 or not lines:
        tail = stderr.decode(errors="replace").strip()[-600:]
        return Unavailable(f"{case.label} failed (exit {process.returncode}): {tail}")
    report = json.loads(lines[-1])
    phases = report.get("phase_medians_ms", {})
    note = "; ".join(f"{name} {ms:.0f} ms" for name, ms in phases.items())
    return Summary(
        samples_ms=tuple(float(s) for s in report["samples_ms"]),
        errors=int(report["errors"]),
        error_messages=tuple(str(m) for m in report["error_messages"]),
        note=f"median phases: {note}" if note else "",
    )
