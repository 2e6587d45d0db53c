"""The physical limit: the host's own interpreter running the same file in a subprocess.

`/usr/bin/python3`, not the `python3` first on PATH: here that is a pyenv shim,
a shell script that costs ~100 ms before Python even starts.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.programs import HELLO_OUTPUT, Program
from bench.stats import Measurement, Unavailable, collect, timed

HOST_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: str


def host_interpreter(program: Program) -> Interpreter | None:
    if program.interpreter == "python3":
        path: str | None = HOST_PYTHON if Path(HOST_PYTHON).exists() else None
        version_args = ["-c", "import platform; print(platform.python_version())"]
    else:
        path = shutil.which(program.interpreter)
        version_args = ["--version"]
    if path is None:
        return None
    done = subprocess.run([path, *version_args], capture_output=True, text=True, timeout=30)
    return Interpreter(path, done.stdout.strip())


def measure_bare(
    program: Program, interpreter: Interpreter | None, warmup: int, runs: int
) -> Measurement:
    if interpreter is None:
        return Unavailable(f"no host {program.interpreter} found")
    with tempfile.TemporaryDirectory(prefix="cb-bench-") as workdir:
        source = Path(workdir) / program.file_name
        source.write_text(program.hello)
        # The same small environment the sandbox gives a program.
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "LANG": "C.UTF-8"}
        argv = [interpreter.path, str(source)]

        def run() -> None:
            done = subprocess.run(argv, capture_output=True, env=env, cwd=workdir, timeout=30)
            if done.returncode != 0 or done.stdout != HELLO_OUTPUT:
                raise RuntimeError(
                    f"exit {done.returncode}: {done.stdout[:80]!r} {done.stderr[:200]!r}"
                )

        return collect(
            timed(run), warmup=warmup, runs=runs, note=f"{interpreter.path} {interpreter.version}"
        )
