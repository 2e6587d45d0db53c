"""The server's one typed configuration, built from flags and CODEBEAKER_* variables.

One frozen dataclass per concern (the service, the limits, the pools, the
backend's own section in `codebeaker.server.backend`), each setting a field
declared with `options.setting`. A flag beats the variable, the variable
beats the default. Sizes accept K/M/G suffixes (binary).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from codebeaker.runtimes.catalog import Catalog
from codebeaker.runtimes.hosts import HostSettings
from codebeaker.runtimes.limits import LimitPolicy
from codebeaker.runtimes.model import Limits
from codebeaker.runtimes.pool import PoolSettings
from codebeaker.runtimes.supervised import ISOLATIONS
from codebeaker.server import transport
from codebeaker.server.backend import BackendConfig
from codebeaker.server.languages import CatalogConfig
from codebeaker.server.operations.config import QueueConfig, StateConfig
from codebeaker.server.options import SIZE, language_ids, parse_size, setting, split_host_port
from codebeaker.server.packages import PackagesConfig
from codebeaker.server.sessions.config import SessionConfig
from codebeaker.server.tenancy import AccessConfig

ENV_PREFIX = "CODEBEAKER_"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "console")


@dataclass(frozen=True)
class ServiceConfig:
    address: str = setting("127.0.0.1:50051", "host:port the gRPC server listens on")
    log_level: str = setting("info", "debug, info, warning or error")
    log_format: str = setting("json", "json (one object per line) or console (for people)")
    metrics_address: str = setting(
        "", "host:port serving Prometheus /metrics over HTTP; empty: off"
    )
    max_concurrency: int = setting(8, "executions running at once; more wait, then are refused")
    admission_wait: float = setting(2.0, "seconds a call may wait for a free slot")
    shutdown_grace: float = setting(30.0, "seconds in-flight executions get on SIGTERM")
    shutdown_delay: float = setting(
        0.0, "seconds the server keeps taking calls on SIGTERM, NOT_SERVING, before it drains"
    )
    tls_cert: str = setting(
        "", "PEM certificate chain the gRPC port serves TLS with; empty: plaintext"
    )
    tls_key: str = setting("", "PEM private key of --tls-cert")
    tls_client_ca: str = setting(
        "", "PEM CA bundle: require client certificates it signed (mTLS); empty: no client certs"
    )
    keepalive_time: float = setting(10.0, "seconds between the server's pings on a connection")
    keepalive_timeout: float = setting(
        5.0, "seconds a ping may go unanswered before the connection and its calls are dropped"
    )
    max_connection_age: float = setting(
        0.0, "seconds after which a connection is asked to go away (GOAWAY); 0: unlimited"
    )
    max_connection_age_grace: float = setting(
        0.0, "seconds an aged connection's calls may still run; 0: max compile + max wall + 30"
    )


@dataclass(frozen=True)
class LimitsConfig:
    default_wall_time: float = setting(10.0, "wall-clock limit when the request sets none (s)")
    max_wall_time: float = setting(120.0, "largest wall-clock limit a request may ask (s)")
    default_cpu_time: float = setting(10.0, "CPU-time limit when the request sets none (s)")
    max_cpu_time: float = setting(120.0, "largest CPU-time limit a request may ask (s)")
    default_memory: int = setting(256 << 20, "memory limit when the request sets none", SIZE)
    max_memory: int = setting(4 << 30, "largest memory limit a request may ask", SIZE)
    default_processes: int = setting(64, "process/thread limit when the request sets none")
    max_processes: int = setting(1024, "largest process/thread limit a request may ask")
    default_output: int = setting(1 << 20, "per-stream output cap when none is set", SIZE)
    max_output: int = setting(16 << 20, "largest per-stream output cap a request may ask", SIZE)
    default_compile_time: float = setting(
        30.0, "wall and CPU limit of a compile when none is set (s)"
    )
    max_compile_time: float = setting(
        120.0, "largest compile wall or CPU limit a request may ask (s)"
    )
    max_source: int = setting(1 << 20, "largest program (source or all files)", SIZE)
    max_stdin: int = setting(8 << 20, "largest stdin a request may carry", SIZE)
    max_files: int = setting(64, "most files a multi-file program may have")
    max_test_cases: int = setting(256, "most test cases one request may carry")
    output_file_cap: int = setting(1 << 20, "bytes returned per output file", SIZE)
    output_files_cap: int = setting(8 << 20, "bytes returned over all output files of a run", SIZE)

    def limit_policy(self) -> LimitPolicy:
        return LimitPolicy(
            default=Limits(
                wall_time=self.default_wall_time,
                cpu_time=self.default_cpu_time,
                memory_bytes=self.default_memory,
                max_processes=self.default_processes,
                max_output_bytes=self.default_output,
            ),
            maximum=Limits(
                wall_time=self.max_wall_time,
                cpu_time=self.max_cpu_time,
                memory_bytes=self.max_memory,
                max_processes=self.max_processes,
                max_output_bytes=self.max_output,
            ),
        )

    def compile_policy(self) -> LimitPolicy:
        """Compile limits: their own time; memory, processes and output as a run's."""
        run = self.limit_policy()
        return LimitPolicy(
            default=replace(
                run.default, wall_time=self.default_compile_time, cpu_time=self.default_compile_time
            ),
            maximum=replace(
                run.maximum, wall_time=self.max_compile_time, cpu_time=self.max_compile_time
            ),
        )


@dataclass(frozen=True)
class PoolConfig:
    isolation: str = setting(
        "host",
        "host: many runs per long-lived host, each in fresh nested namespaces; "
        "container: one container per run",
    )
    pool_size: int = setting(
        2, "container isolation: started containers kept waiting per language; 0: none"
    )
    pool_parallel: int = setting(4, "container launches one language's pool runs at once")
    pool_languages: str = setting(
        "",
        "languages that get a pool (or a minimum of hosts), e.g. python,c; "
        "empty: those whose spec.toml says warm = true",
    )
    hosts_min: int = setting(1, "host isolation: hosts kept per language, with or without demand")
    hosts_max: int = setting(8, "host isolation: most hosts of one language and limits at once")
    hosts_budget: int = setting(16, "host isolation: most hosts of all languages together")
    host_max_runs: int = setting(1000, "host isolation: runs after which a host is replaced")
    host_max_age: float = setting(900.0, "host isolation: seconds after which a host is replaced")
    host_idle: float = setting(
        60.0, "host isolation: seconds of past demand a language's host count follows"
    )

    def settings(self, catalog: Catalog) -> PoolSettings:
        """Pool languages resolved to the catalog's ids (ValueError naming the setting)."""
        names = [name.strip() for name in self.pool_languages.split(",") if name.strip()]
        languages = frozenset(language_ids(catalog, names, "pool_languages"))
        if not names:
            languages = frozenset(spec.id for spec in catalog.specs() if spec.warm)
        return PoolSettings(self.pool_size, languages, self.pool_parallel)

    def host_settings(self) -> HostSettings:
        if self.isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}")
        return HostSettings(
            minimum=self.hosts_min,
            maximum=self.hosts_max,
            budget=self.hosts_budget,
            max_runs=self.host_max_runs,
            max_age=self.host_max_age,
            idle_timeout=self.host_idle,
        )


@dataclass(frozen=True)
class ServerConfig:
    """Every section; `with_values` sets settings by their (unique) names."""

    service: ServiceConfig = field(default_factory=ServiceConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    pools: PoolConfig = field(default_factory=PoolConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    access: AccessConfig = field(default_factory=AccessConfig)
    state: StateConfig = field(default_factory=StateConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    sessions: SessionConfig = field(default_factory=SessionConfig)
    packages: PackagesConfig = field(default_factory=PackagesConfig)

    def with_values(self, **values: Any) -> ServerConfig:
        """A copy with the named settings changed, whichever section holds them."""
        unknown = values.keys() - {f.name for _, f in settings_fields()}
        if unknown:
            raise TypeError(f"no such setting: {', '.join(sorted(unknown))}")
        sections = {}
        for section_field in dataclasses.fields(self):
            section = getattr(self, section_field.name)
            names = {f.name for f in dataclasses.fields(section)}
            sections[section_field.name] = replace(
                section, **{k: v for k, v in values.items() if k in names}
            )
        return ServerConfig(**sections)


def settings_fields() -> Iterator[tuple[str, dataclasses.Field[Any]]]:
    """(section name, setting field) for every setting, in documentation order."""
    defaults = ServerConfig()
    for section_field in dataclasses.fields(defaults):
        for config_field in dataclasses.fields(getattr(defaults, section_field.name)):
            yield section_field.name, config_field


def _converter(config_field: dataclasses.Field[Any]) -> Any:
    if config_field.metadata.get("kind") == SIZE:
        return parse_size
    return {int: int, float: float, str: str}[type(config_field.default)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; defaults stay None so env vars can fill in."""
    for _, config_field in settings_fields():
        flag = "--" + config_field.name.replace("_", "-")
        env = ENV_PREFIX + config_field.name.upper()
        parser.add_argument(
            flag,
            dest=config_field.name,
            default=None,
            type=_converter(config_field),
            metavar=config_field.name.upper(),
            help=f"{config_field.metadata['help']} [env {env}; default {config_field.default}]",
        )


def build_config(args: argparse.Namespace, environ: Mapping[str, str]) -> ServerConfig:
    values: dict[str, Any] = {}
    for _, config_field in settings_fields():
        value = getattr(args, config_field.name, None)
        if value is None:
            name = ENV_PREFIX + config_field.name.upper()
            raw = environ.get(name)
            if raw is not None and raw != "":
                try:
                    value = _converter(config_field)(raw)
                except ValueError as error:
                    raise ValueError(f"{name}: {error}") from None
        if value is not None:
            values[config_field.name] = value
    config = ServerConfig().with_values(**values)
    check(config, config.catalog.catalog())
    return config


def check(config: ServerConfig, catalog: Catalog) -> None:
    """Refuse what would fail later: a ValueError naming the setting."""
    config.limits.limit_policy()  # defaults against maxima
    config.limits.compile_policy()
    service = config.service
    if service.log_level.lower() not in LOG_LEVELS:
        raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
    if service.log_format.lower() not in LOG_FORMATS:
        raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}")
    if service.metrics_address:
        split_host_port(service.metrics_address)
    if service.max_concurrency < 1:
        raise ValueError("max_concurrency must be at least 1")
    if service.shutdown_delay < 0:
        raise ValueError("shutdown_delay must not be negative")
    transport.check(config)  # TLS files readable and paired; keepalive and ages sane
    config.pools.settings(catalog)  # the languages it names exist; sizes are sane
    config.pools.host_settings()
    config.backend.settings(catalog)
    config.access.check()  # the tenants file reads, and every tenant in it is valid
    config.queue.check()
    config.sessions.check()
    config.packages.check(catalog)


def parse_config(argv: Sequence[str], environ: Mapping[str, str]) -> ServerConfig:
    parser = argparse.ArgumentParser(prog="codebeaker serve")
    add_arguments(parser)
    return build_config(parser.parse_args(argv), environ)
