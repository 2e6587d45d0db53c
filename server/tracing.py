"""Where the server's spans go, decided once at start-up from the standard OTEL_* variables.

With no exporter configured, no SDK is installed at all: the OpenTelemetry API
stays a no-op (it still carries a caller's trace context through, so log lines
keep the caller's trace id), and tracing costs nothing measurable. An exporter
is configured by:

- `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`):
  OTLP over gRPC to that collector; the exporter reads the rest of its
  `OTEL_EXPORTER_OTLP_*` settings (headers, timeout, insecure) itself.
- `OTEL_TRACES_EXPORTER`: `otlp`, `console` (spans as JSON on stdout, for
  debugging) or `none`; it beats the endpoint rule above.
- `OTEL_SDK_DISABLED=true`: nothing, whatever else is set.

The resource is `service.name` (`OTEL_SERVICE_NAME`, else a `service.name`
in `OTEL_RESOURCE_ATTRIBUTES`, else "codebeaker"), `service.version`, and
whatever `OTEL_RESOURCE_ATTRIBUTES` adds. Propagation is the API's global
propagator (`OTEL_PROPAGATORS`; W3C trace context and baggage by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version

from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

DEFAULT_SERVICE_NAME = "codebeaker"
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def exporter_name(environ: Mapping[str, str]) -> str:
    """Which exporter the environment asks for: "otlp", "console" or "none"."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "none"
    chosen = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if chosen:
        if chosen not in ("otlp", "console", "none"):
            raise ValueError(f"OTEL_TRACES_EXPORTER={chosen!r}: use otlp, console or none")
        return chosen
    return "otlp" if any(environ.get(name) for name in _ENDPOINTS) else "none"


def resource() -> Resource:
    """The service's identity; `Resource.create` reads OTEL_SERVICE_NAME and
    OTEL_RESOURCE_ATTRIBUTES from the process environment itself."""
    detected = Resource.create({SERVICE_VERSION: _package_version()})
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        return detected.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return detected


def tracer_provider(environ: Mapping[str, str]) -> TracerProvider | None:
    """An SDK provider exporting where the environment says, or None for no tracing."""
    name = exporter_name(environ)
    if name == "none":
        return None
    exporter: SpanExporter
    if name == "console":
        exporter = ConsoleSpanExporter()
    else:
        # Imported here: gRPC exporter machinery is only loaded when used.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=resource())
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _package_version() -> str:
    try:
        return version("codebeaker")
    except PackageNotFoundError:
        return "0+unknown"
