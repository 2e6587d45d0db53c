"""llm-sandbox 0.3.46 (Docker backend) on our images.

Two modes:
- `oneshot`: a `SandboxSession` per run (fresh container, used once), with
  `skip_environment_setup=True`, its documented way to skip the per-session
  venv creation and pip upgrade (which would also need a network). This is
  the mode comparable to CodeBeaker's single-use containers.
- `pooled`: its container pool (`create_pool_manager`), its documented fast
  path. It *reuses* containers between runs, so it is shown for information,
  not as a like-for-like peer.

Configuration forced by our images, each the peer's own option:
- its handlers run `python {file}` / `node {file}`; Debian's image has only
  `python3`, and CodeBeaker starts Node from the image's startup snapshot, so
  handlers registered through its `LanguageHandlerFactory` run CodeBeaker's
  own command (spec.toml `run`);
- sessions run commands with `exec` in a long-lived container, while our CMD is
  cb-supervisor (which exits when its stdin closes): the container runs
  `sleep infinity` under Docker's init (without an init, `sleep` as PID 1
  ignores SIGTERM and every `close()` waits Docker's 10 s stop timeout);
- no network, like the other sandboxes here; the bench's label for cleanup.
It keeps its own default user (root) and workdir (/sandbox).
"""

from __future__ import annotations

import importlib
import shlex
import sys
from collections.abc import Callable
from importlib import metadata

from bench.programs import BENCH_LABEL, Program
from bench.workers.common import Phases, RunOnce, parse, serve

_HANDLERS = {
    "python": ("llm_sandbox.language_handlers.python_handler", "PythonHandler"),
    "javascript": ("llm_sandbox.language_handlers.javascript_handler", "JavaScriptHandler"),
}


def _register_handler(program: Program) -> None:
    """Its own handler for the language, running the command CodeBeaker runs."""
    module, name = _HANDLERS[program.language]
    base = getattr(importlib.import_module(module), name)

    def commands(self: object, code_file: str, runtime_context: object = None) -> list[str]:
        return [shlex.join(program.command(code_file))]

    handler = type(f"Bench{name}", (base,), {"get_execution_commands": commands})
    factory = importlib.import_module("llm_sandbox.language_handlers.factory")
    factory.LanguageHandlerFactory.register_handler(program.language, handler)


def _runtime_configs(run_id: str) -> dict[str, object]:
    return {
        "command": ["sleep", "infinity"],
        "init": True,
        "network_mode": "none",
        "labels": {BENCH_LABEL: run_id},
    }


def _oneshot(program: Program, run_id: str) -> tuple[RunOnce, Callable[[], None]]:
    llm = importlib.import_module("llm_sandbox")

    def run_once(timing: Phases) -> bytes:
        session = llm.SandboxSession(
            lang=program.language,
            image=program.image,
            skip_environment_setup=True,
            runtime_configs=_runtime_configs(run_id),
        )
        try:
            with timing.phase("open (create+start)"):
                session.open()
            with timing.phase("run (mkdir exec+copy+exec)"):
                out = session.run(program.hello)
        finally:
            with timing.phase("close (stop+wait+remove)"):
                session.close()
        if out.exit_code != 0:
            raise RuntimeError(f"exit {out.exit_code}: {out.stderr[:200]!r}")
        return str(out.stdout).encode()

    return run_once, lambda: None


def _pooled(program: Program, run_id: str) -> tuple[RunOnce, Callable[[], None]]:
    llm = importlib.import_module("llm_sandbox")
    pool_module = importlib.import_module("llm_sandbox.pool")
    pool = pool_module.create_pool_manager(
        backend="docker",
        config=pool_module.PoolConfig(max_pool_size=2, min_pool_size=2),
        lang=program.language,
        image=program.image,
        skip_environment_setup=True,
        runtime_configs=_runtime_configs(run_id),
    )

    def run_once(timing: Phases) -> bytes:
        session = llm.SandboxSession(pool=pool, lang=program.language)
        with timing.phase("acquire+run+release"), session:
            out = session.run(program.hello)
        if out.exit_code != 0:
            raise RuntimeError(f"exit {out.exit_code}: {out.stderr[:200]!r}")
        return str(out.stdout).encode()

    return run_once, pool.close


def main(argv: list[str]) -> int:
    options = parse(argv)
    _register_handler(options.program)
    make = _pooled if options.mode == "pooled" else _oneshot
    run_once, close = make(options.program, options.run_id)
    info = {"llm-sandbox": metadata.version("llm-sandbox"), "mode": options.mode or "oneshot"}
    return serve(options, run_once, close, info)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
