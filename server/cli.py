"""`codebeaker serve`: the server's subcommand, plugged into the `codebeaker` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from opentelemetry import trace

from codebeaker.runtimes.catalog import Catalog
from codebeaker.runtimes.docker import DockerSandbox
from codebeaker.server import logs, tracing
from codebeaker.server.app import serve
from codebeaker.server.config import add_arguments, build_config


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the CodeBeaker gRPC server",
        description="Run the CodeBeaker gRPC server. Every flag has a CODEBEAKER_* variable.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    try:
        config = build_config(args, os.environ)
        provider = tracing.tracer_provider(os.environ)
    except ValueError as error:
        print(f"codebeaker serve: {error}", file=sys.stderr)
        return 2
    logs.configure(config.log_level, config.log_format)
    catalog = Catalog.load()
    settings = config.docker_settings(catalog)  # build_config checked its names
    sandbox = DockerSandbox(catalog, settings, config.limit_policy().default)
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
