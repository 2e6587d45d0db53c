"""The client commands' connection options, and the `Client` they open.

The client commands share one parent parser (address, deadline, TLS, mTLS,
token), so both connect alike; the PEM files are read here, before any call,
so an unreadable one is a usage error naming the flag rather than a failure
deep in grpc. The token is never echoed: not as a help default, not in a
message.
"""

from __future__ import annotations

import argparse

from codebeaker.client._channel import read_pem
from codebeaker.client._cli_support import CliError, parse_seconds
from codebeaker.client._settings import ADDRESS_ENV, TOKEN_ENV, default_address
from codebeaker.client.sync import Client


def connection_parser(
    timeout_help: str = "deadline of each call to the server (default: none)",
) -> argparse.ArgumentParser:
    """A parent parser holding every connection option (`wait` words --timeout its way)."""
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--address",
        default=default_address(),
        help=f"server address (default: %(default)s, from ${ADDRESS_ENV} if set)",
    )
    connection.add_argument("--timeout", type=parse_seconds, metavar="S", help=timeout_help)
    connection.add_argument(
        "--tls",
        action="store_true",
        help="connect over TLS, trusting the system's CAs unless --ca is given",
    )
    connection.add_argument(
        "--ca", metavar="FILE", help="PEM CA bundle to verify the server by (implies --tls)"
    )
    connection.add_argument(
        "--cert",
        metavar="FILE",
        help="PEM client certificate for a server that requires one (mTLS; needs --key)",
    )
    connection.add_argument("--key", metavar="FILE", help="PEM private key of --cert")
    connection.add_argument(
        "--token",
        metavar="TOKEN",
        # No default shown: it would print the secret. None: the SDK reads the variable.
        help=f"bearer token sent with every call (default: ${TOKEN_ENV}; prefer the "
        "variable, a flag is visible to other users in the process list)",
    )
    return connection


def open_client(args: argparse.Namespace) -> Client:
    """The SDK client for the parsed connection options; a bad one is a usage error."""
    if (args.cert is None) != (args.key is None):
        raise CliError("--cert and --key go together (the client certificate and its key)")
    try:
        ca = read_pem("--ca", args.ca) if args.ca is not None else None
        cert = read_pem("--cert", args.cert) if args.cert is not None else None
        key = read_pem("--key", args.key) if args.key is not None else None
        return Client(
            args.address,
            timeout=args.timeout,
            tls=args.tls,
            ca=ca,
            cert=cert,
            key=key,
            token=args.token,
        )
    except ValueError as error:
        raise CliError(str(error)) from None
