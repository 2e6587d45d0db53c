"""`codebeaker tenants hash-key`: the digest of an API key, for the tenants file.

The tenants file stores no keys, only their SHA-256 digests, so this prints
the line to paste into a tenant's table. With `--generate` it makes a random
key and prints it once (hand it to the tenant; nothing keeps it); otherwise it
reads the key from stdin (without echo at a terminal).
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys

from codebeaker.server.tenancy import hash_key

KEY_PREFIX = "cbk_"  # recognisable in a leaked-secret scan


def add_tenant_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tenants = subparsers.add_parser(
        "tenants",
        help="credentials for the --tenants file",
        description="Credentials for the server's --tenants file.",
    )
    commands = tenants.add_subparsers(dest="tenants_command", metavar="COMMAND")
    command = commands.add_parser(
        "hash-key",
        help="print an API key's SHA-256 line for the tenants file",
        description="Print the api_key_sha256 line of an API key read from stdin, "
        "or of a new random key (--generate), which is printed once.",
    )
    command.add_argument(
        "--generate", action="store_true", help="make a new random key and print it once"
    )
    command.set_defaults(handler=run_hash_key)


def run_hash_key(args: argparse.Namespace) -> int:
    if args.generate:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        print(f"key: {key}")
    else:
        key = (getpass.getpass("API key: ") if sys.stdin.isatty() else sys.stdin.read()).strip()
        if not key:
            print(
                "codebeaker tenants hash-key: no key on stdin (or use --generate)", file=sys.stderr
            )
            return 2
    print(f'api_key_sha256 = ["{hash_key(key)}"]')
    return 0
