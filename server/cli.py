"""`codebeaker serve`: the server's subcommand, plugged into the `codebeaker` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from codebeaker.runtimes.catalog import Catalog
from codebeaker.runtimes.docker import DockerSandbox
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
    except ValueError as error:
        print(f"codebeaker serve: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    catalog = Catalog.load()
    sandbox = DockerSandbox(catalog, config.docker_settings(), config.limit_policy().default)
    try:
        asyncio.run(serve(config, sandbox, catalog))
    except OSError as error:
        print(f"codebeaker serve: {error}", file=sys.stderr)
        return 1
    return 0
