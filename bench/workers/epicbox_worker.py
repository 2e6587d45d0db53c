"""epicbox 1.1.0 on our images: one fresh container per run, via its own API.

Runs in bench/.venv-peers: epicbox builds its Docker client with urllib3's
`Retry(method_whitelist=...)`, which urllib3 2.x removed, while our venv needs
urllib3 2.x. `epicbox.run` is `create` + `start` + `destroy`; calling the
three ourselves gives the same work with a per-phase split. Our images run as
uid 65534 with cb-supervisor as CMD, so the profile names the user and the
interpreter command explicitly.
"""

from __future__ import annotations

import importlib
import shlex
import sys
from importlib import metadata

from bench.workers.common import Phases, parse, serve

LIMITS = {"cputime": 10, "memory": 256}  # CodeBeaker's defaults: 10 s CPU, 256 MiB


def main(argv: list[str]) -> int:
    options = parse(argv)
    program = options.program
    epicbox = importlib.import_module("epicbox")
    epicbox.configure(profiles=[epicbox.Profile(program.language, program.image, user="65534")])
    command = shlex.join(program.command(program.file_name))
    files = [{"name": program.file_name, "content": program.hello.encode()}]

    def run_once(timing: Phases) -> bytes:
        with timing.phase("create+write file"):
            sandbox = epicbox.create(program.language, command, files=files, limits=dict(LIMITS))
        try:
            with timing.phase("attach+start+read to EOF+inspect"):
                result = epicbox.start(sandbox)
        finally:
            with timing.phase("destroy"):
                epicbox.destroy(sandbox)
        if result["exit_code"] != 0:
            raise RuntimeError(f"exit {result['exit_code']}: {result['stderr'][:200]!r}")
        return bytes(result["stdout"])

    info = {"epicbox": metadata.version("epicbox"), "urllib3": metadata.version("urllib3")}
    return serve(options, run_once, lambda: None, info)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
