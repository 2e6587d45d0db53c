"""The `codebeaker` command of a server install: the client's commands, `serve`,
and the backend's own (`images build`).

The console script points here. The client's commands (`run`, `runtimes`)
need none of the server, so this module imports it only when one of its own
commands (or help) is asked for: `codebeaker run` starts as fast as a
client-only `python -m codebeaker.client run`. In a client-only install (no
`[server]` extra) those commands still show up, and say in one line what to
install instead of failing with a traceback.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence

from codebeaker.client import cli as client_cli


def main(argv: Sequence[str] | None = None) -> int:
    return client_cli.main(argv, server_commands=add_server_commands)


# What a client-only install lacks shows up as an import here, not at start-up.
SERVER_INSTALL = "pip install 'codebeaker[server]'"
_SERVER_COMMANDS = ("serve", "images", "tenants", "queue")  # what add_server_commands adds


def add_server_commands(subparsers: client_cli.SubParsers) -> None:
    try:
        from codebeaker.server.backend import add_backend_commands
        from codebeaker.server.config import add_arguments
        from codebeaker.server.operations.control import add_queue_commands
        from codebeaker.server.tenant_commands import add_tenant_commands
    except ModuleNotFoundError as missing:
        if (missing.name or "codebeaker").startswith("codebeaker"):
            raise  # our own module missing is a bug, not an install to suggest
        _add_unavailable_commands(subparsers, (missing.name or "").partition(".")[0])
        return

    parser = subparsers.add_parser(
        "serve",
        help="run the CodeBeaker gRPC server",
        description="Run the CodeBeaker gRPC server. Every flag has a CODEBEAKER_* variable.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run_serve)
    add_backend_commands(subparsers)
    add_tenant_commands(subparsers)
    add_queue_commands(subparsers)


def _add_unavailable_commands(subparsers: client_cli.SubParsers, module: str) -> None:
    """The server's commands, each only saying which extra it needs, then exiting 2."""
    for name in _SERVER_COMMANDS:
        # No option prefix: every argument lands in `ignored`, so even
        # `serve --address ...` reaches the message instead of a parse error.
        parser = subparsers.add_parser(
            name, help=f"(needs {SERVER_INSTALL})", add_help=False, prefix_chars="\0"
        )
        parser.add_argument("ignored", nargs="*", help=argparse.SUPPRESS)
        message = (
            f"codebeaker {name}: needs the server's dependencies "
            f"(no module named {module!r}): {SERVER_INSTALL}"
        )
        parser.set_defaults(handler=functools.partial(_unavailable, message))


def _unavailable(message: str, _args: argparse.Namespace) -> int:
    print(message, file=sys.stderr)
    return 2


def run_serve(args: argparse.Namespace) -> int:
    import asyncio
    import os

    from opentelemetry import trace

    from codebeaker.server import logs, tracing
    from codebeaker.server.app import serve
    from codebeaker.server.backend import build_backends
    from codebeaker.server.config import build_config

    try:
        config = build_config(args, os.environ)
        provider = tracing.tracer_provider(os.environ)
    except ValueError as error:
        print(f"codebeaker serve: {error}", file=sys.stderr)
        return 2
    logs.configure(config.service.log_level, config.service.log_format)
    catalog = config.catalog.catalog()  # build_config built it once: it loads
    backends = build_backends(config, catalog)  # build_config checked its settings
    if provider is not None:
        trace.set_tracer_provider(provider)
    try:
        asyncio.run(serve(config, backends.sandbox, catalog, backends.sessions, backends.installer))
    except OSError as error:
        print(f"codebeaker serve: {error}", file=sys.stderr)
        return 1
    finally:
        if provider is not None:
            provider.shutdown()  # exports what is still batched
    return 0


if __name__ == "__main__":
    sys.exit(main())
