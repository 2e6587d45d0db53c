"""The server's access control, assembled once from the `access` config section.

`Access` reads the tenants file and opens the audit log, and hands the
application what it wires: the tenancy (quotas, for the executions), the audit
interceptor (outside the error interceptor) and the auth interceptor (inside
it). Without a tenants file the server is open, as before: no interceptor
checks credentials, and a server that listens beyond loopback says so once at
start, since then anyone who reaches the port can run code.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

from codebeaker.server.audit import AuditInterceptor, AuditLog
from codebeaker.server.auth import AuthInterceptor
from codebeaker.server.logs import event
from codebeaker.server.metrics import Metrics
from codebeaker.server.options import split_host_port
from codebeaker.server.quotas import Tenancy
from codebeaker.server.tenancy import AccessConfig

log = logging.getLogger(__name__)


class Access:
    def __init__(self, config: AccessConfig, metrics: Metrics) -> None:
        tenants = config.directory()
        self.tenancy = (
            None if tenants is None else Tenancy(tenants, rejected=metrics.quota_rejected)
        )
        self.audit = AuditLog(Path(config.audit_log)) if config.audit_log else None
        count = metrics.tenant_request if self.tenancy is not None else None
        self.audit_interceptor = AuditInterceptor(self.audit, count)
        self.auth_interceptor = AuthInterceptor(self.tenancy)

    def warn_if_open(self, address: str) -> None:
        """One warning when anyone beyond this machine may call without credentials."""
        if self.tenancy is not None or is_local(address):
            return
        event(
            log,
            logging.WARNING,
            "server.open",
            f"no --tenants file: anyone who reaches {address} can run code, unauthenticated "
            "and without quotas",
            address=address,
        )

    async def close(self) -> None:
        if self.audit is not None:
            await self.audit.close()


def is_local(address: str) -> bool:
    """Whether only this machine can reach `address`: loopback, or a Unix socket."""
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    try:
        host = split_host_port(address)[0]
    except ValueError:  # not host:port: say nothing for sure, so warn
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False
