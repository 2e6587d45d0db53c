"""Authenticating every call of ours: who is the caller, and may it call now.

An interceptor on the one base (`interception`), for `/codebeaker.*` methods
only: health and reflection stay open, so probes and tooling need no key.
The caller is identified by `authorization: Bearer <API key>` metadata (what
the SDK's `token=` sends), looked up by the key's SHA-256 digest, or else by
the subject of its mTLS client certificate, which gRPC has verified against
`--tls-client-ca` before the call exists. Then its token bucket is charged.

It sits INSIDE the error interceptor and only raises domain errors
(`Unauthenticated`, `QuotaExceeded`): the error interceptor maps them, with
their details, exactly as it maps every other refusal, so there is still one
place that decides status codes. The tenant is published for the rest of the
call (`caller.current_tenant()`) and on the server span (`codebeaker.tenant`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TypeVar

from grpc import aio
from opentelemetry import trace

from codebeaker.runtimes.errors import Unauthenticated
from codebeaker.server import caller
from codebeaker.server.errors import OUR_METHODS
from codebeaker.server.interception import Interceptor, Method
from codebeaker.server.quotas import Tenancy
from codebeaker.server.tenancy import Tenant, Tenants

Req = TypeVar("Req")
Resp = TypeVar("Resp")
TENANT_ATTRIBUTE = "codebeaker.tenant"
# gRPC's name for the verified peer certificate's subject, in RFC 2253 form.
SUBJECT_PROPERTY = "x509_subject"


def bearer_key(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The API key of `authorization: Bearer <key>`; None when there is no such header."""
    values = [value for key, value in metadata if key.lower() == "authorization"]
    if not values:
        return None
    if len(values) > 1:
        raise Unauthenticated("more than one authorization header; send one")
    value = values[0]
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    scheme, _, key = text.strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthenticated("the authorization metadata must be 'Bearer <API key>'")
    return key.strip()


def peer_subject(auth_context: Mapping[str, Iterable[bytes]]) -> str | None:
    """The verified client certificate's subject, if the call came over mTLS."""
    subject = next(iter(auth_context.get(SUBJECT_PROPERTY) or ()), None)
    return None if subject is None else subject.decode(errors="replace")


def authenticate(
    tenants: Tenants,
    metadata: Iterable[tuple[str, str | bytes]],
    auth_context: Mapping[str, Iterable[bytes]],
) -> Tenant:
    """The tenant these credentials identify, or Unauthenticated."""
    key = bearer_key(metadata)
    subject = peer_subject(auth_context)
    by_certificate = tenants.for_subject(subject) if subject else None
    if key is not None:
        tenant = tenants.for_key(key)
        if tenant is None:
            raise Unauthenticated("the API key is not valid")
        if by_certificate is not None and by_certificate is not tenant:
            raise Unauthenticated("the API key and the client certificate are different tenants'")
        return tenant
    if by_certificate is not None:
        return by_certificate
    if subject:
        raise Unauthenticated(f"no tenant has the client certificate subject {subject!r}")
    raise Unauthenticated(
        "no credentials: send 'authorization: Bearer <API key>' metadata "
        "(the SDK's token=), or a tenant's client certificate over mTLS"
    )


class AuthInterceptor(Interceptor):
    """Authenticates and rate-limits our calls; absent (open server) without tenants."""

    def __init__(self, tenancy: Tenancy | None) -> None:
        self._tenancy = tenancy

    def intercepts(self, method: Method) -> bool:
        return self._tenancy is not None and method.name.startswith(OUR_METHODS)

    @contextlib.asynccontextmanager
    async def intercept(
        self, method: Method, context: aio.ServicerContext[Req, Resp]
    ) -> AsyncIterator[None]:
        tenancy = self._tenancy
        assert tenancy is not None  # `intercepts` let only tenanted servers through
        metadata = context.invocation_metadata() or ()
        tenant = authenticate(tenancy.tenants, metadata, context.auth_context())
        token = caller.set_tenant(tenant)
        try:
            trace.get_current_span().set_attribute(TENANT_ATTRIBUTE, tenant.name)
            tenancy.admit_request(tenant)
            yield
        finally:
            # grpc.aio runs each call in a task of its own, so the variable dies with it
            # anyway; a response stream closed from elsewhere must not fail over it.
            with contextlib.suppress(ValueError):
                caller.reset_tenant(token)
