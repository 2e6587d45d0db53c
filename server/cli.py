"""The `codebeaker` command of a server install: the client's commands, `serve`,
and the backend's own (`images build`).

The console script points here. The client's commands (`run`, `runtimes`)
need none of the server, so this module imports it only when one of its own
commands (or help) is asked for: `codebeaker run` starts as fast as a
client-only `python -m codebeaker.client run`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from codebeaker.client import cli as client_cli


def main(argv: Sequence[str] | None = None) -> int:
    return client_cli.main(argv, server_commands=add_server_commands)


def add_server_commands(subparsers: client_cli.SubParsers) -> None:
    from codebeaker.server.backend import add_backend_commands
    from codebeaker.server.config import add_arguments

    parser = subparsers.add_parser(
        "serve",
        help="run the CodeBeaker gRPC server",
        description="Run the CodeBeaker gRPC server. Every flag has a CODEBEAKER_* variable.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run_serve)
    add_backend_commands(subparsers)


def run_serve(args: argparse.Namespace) -> int:
    import asyncio
    import os

    from opentelemetry import trace

    from codebeaker.runtimes.catalog import Catalog
    from codebeaker.server import logs, tracing
    from codebeaker.server.app import serve
    from codebeaker.server.backend import build_sandbox
    from codebeaker.server.config import build_config

    try:
        config = build_config(args, os.environ)
        provider = tracing.tracer_provider(os.environ)
    except ValueError as error:
        print(f"codebeaker serve: {error}", file=sys.stderr)
        return 2
    logs.configure(config.service.log_level, config.service.log_format)
    catalog = Catalog.load()
    sandbox = build_sandbox(config, catalog)  # build_config checked its settings
    if provider is not None:
        trace.set_tracer_provider(provider)
    try:
        asyncio.run(serve(config, sandbox, catalog))
    except OSError as error:
        print(f"codebeaker serve: {error}", file=sys.stderr)
        return 1
    finally:
        if provider is not None:
            provider.shutdown()  # exports what is still batched
    return 0


if __name__ == "__main__":
    sys.exit(main())
