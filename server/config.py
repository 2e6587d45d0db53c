"""The server's one typed configuration, built from flags and CODEBEAKER_* variables.

Every setting is a dataclass field with a help text; the command-line flag is
the field name with dashes (`--max-concurrency`) and the environment variable
the same in capitals (`CODEBEAKER_MAX_CONCURRENCY`). A flag beats the variable,
the variable beats the default. Sizes accept K/M/G suffixes (binary).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from codebeaker.runtimes.catalog import Catalog
from codebeaker.runtimes.docker import DockerSettings
from codebeaker.runtimes.errors import UnknownLanguage
from codebeaker.runtimes.limits import LimitPolicy
from codebeaker.runtimes.model import Limits

ENV_PREFIX = "CODEBEAKER_"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "console")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """'256M' -> 268435456; plain numbers are bytes."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (use e.g. 65536, 64K, 256M, 1G)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def parse_assignments(text: str) -> dict[str, str]:
    """'a=x,b=y' -> {'a': 'x', 'b': 'y'}."""
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, equals, value = item.partition("=")
        if not equals or not key.strip() or not value.strip():
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def split_host_port(address: str) -> tuple[str, int]:
    """'127.0.0.1:9464' -> ('127.0.0.1', 9464); '[::1]:0' -> ('::1', 0)."""
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"not a host:port address: {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _opt(default: object, help: str, kind: str = "") -> Any:
    return field(default=default, metadata={"help": help, "kind": kind})


@dataclass(frozen=True)
class ServerConfig:
    address: str = _opt("127.0.0.1:50051", "host:port the gRPC server listens on")
    log_level: str = _opt("info", "debug, info, warning or error")
    log_format: str = _opt("json", "json (one object per line) or console (for people)")
    metrics_address: str = _opt("", "host:port serving Prometheus /metrics over HTTP; empty: off")
    max_concurrency: int = _opt(8, "executions running at once; more wait, then are refused")
    admission_wait: float = _opt(2.0, "seconds a call may wait for a free slot")
    shutdown_grace: float = _opt(30.0, "seconds in-flight executions get on SIGTERM")
    default_wall_time: float = _opt(10.0, "wall-clock limit when the request sets none (s)")
    max_wall_time: float = _opt(120.0, "largest wall-clock limit a request may ask (s)")
    default_cpu_time: float = _opt(10.0, "CPU-time limit when the request sets none (s)")
    max_cpu_time: float = _opt(120.0, "largest CPU-time limit a request may ask (s)")
    default_memory: int = _opt(256 << 20, "memory limit when the request sets none", "size")
    max_memory: int = _opt(4 << 30, "largest memory limit a request may ask", "size")
    default_processes: int = _opt(64, "process/thread limit when the request sets none")
    max_processes: int = _opt(1024, "largest process/thread limit a request may ask")
    default_output: int = _opt(1 << 20, "per-stream output cap when none is set", "size")
    max_output: int = _opt(16 << 20, "largest per-stream output cap a request may ask", "size")
    default_compile_time: float = _opt(30.0, "wall and CPU limit of a compile when none is set (s)")
    max_compile_time: float = _opt(120.0, "largest compile wall or CPU limit a request may ask (s)")
    max_source: int = _opt(1 << 20, "largest program (source or all files)", "size")
    max_stdin: int = _opt(8 << 20, "largest stdin a request may carry", "size")
    max_files: int = _opt(64, "most files a multi-file program may have")
    max_test_cases: int = _opt(256, "most test cases one request may carry")
    output_file_cap: int = _opt(1 << 20, "bytes returned per output file", "size")
    output_files_cap: int = _opt(8 << 20, "bytes returned over all output files of a run", "size")
    pool_size: int = _opt(2, "started containers kept waiting per language; 0 disables the pool")
    pool_parallel: int = _opt(4, "container launches one language's pool runs at once")
    pool_languages: str = _opt("", "languages that get a pool, e.g. python,c; empty: all")
    runtime: str = _opt("runc", "OCI runtime for sandboxes: runc, or runsc (gVisor)")
    language_runtimes: str = _opt("", "per-language runtime overrides, e.g. python=runsc,js=runc")
    instance: str = _opt("default", "owner label value; leftovers with it are removed at start")
    sandbox_cpus: float = _opt(1.0, "CPU quota of one sandbox, in CPUs")
    workspace_size: int = _opt(64 << 20, "size of the sandbox's /workspace tmpfs", "size")
    tmp_size: int = _opt(64 << 20, "size of the sandbox's /tmp tmpfs", "size")
    docker_host: str = _opt("", "Docker engine address; empty: DOCKER_HOST or the local socket")

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

    def docker_settings(self, catalog: Catalog) -> DockerSettings:
        """The sandbox's settings, language names resolved to the catalog's ids
        (an unknown one is a ValueError naming the setting)."""
        try:
            runtimes = {
                catalog.resolve(name).id: runtime
                for name, runtime in parse_assignments(self.language_runtimes).items()
            }
        except ValueError as error:
            raise ValueError(f"language_runtimes: {error}") from None
        except UnknownLanguage as error:
            raise ValueError(f"language_runtimes: {error.problem}") from None
        try:
            pooled = {catalog.resolve(n).id for n in self.pool_languages.split(",") if n.strip()}
        except UnknownLanguage as error:
            raise ValueError(f"pool_languages: {error.problem}") from None
        return DockerSettings(
            docker_host=self.docker_host or DockerSettings.host_from_env(),
            runtime=self.runtime,
            language_runtimes=MappingProxyType(runtimes),
            instance=self.instance,
            cpus=self.sandbox_cpus,
            workspace_bytes=self.workspace_size,
            tmp_bytes=self.tmp_size,
            pool_size=self.pool_size,
            pool_parallel=self.pool_parallel,
            pool_languages=frozenset(pooled),
        )


def _converter(config_field: dataclasses.Field[Any]) -> Any:
    if config_field.metadata.get("kind") == "size":
        return parse_size
    return {int: int, float: float, str: str}[type(config_field.default)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per config field; defaults stay None so env vars can fill in."""
    for config_field in dataclasses.fields(ServerConfig):
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
    for config_field in dataclasses.fields(ServerConfig):
        value = getattr(args, config_field.name, None)
        if value is None:
            raw = environ.get(ENV_PREFIX + config_field.name.upper())
            if raw is not None and raw != "":
                try:
                    value = _converter(config_field)(raw)
                except ValueError as error:
                    name = ENV_PREFIX + config_field.name.upper()
                    raise ValueError(f"{name}: {error}") from None
        if value is not None:
            values[config_field.name] = value
    config = ServerConfig(**values)
    config.limit_policy()  # validates defaults against maxima
    config.compile_policy()
    if config.log_level.lower() not in LOG_LEVELS:
        raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
    if config.log_format.lower() not in LOG_FORMATS:
        raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}")
    if config.metrics_address:
        split_host_port(config.metrics_address)
    if config.max_concurrency < 1:
        raise ValueError("max_concurrency must be at least 1")
    config.docker_settings(Catalog.load())  # every language it names exists
    if config.pool_size < 0 or config.pool_parallel < 1:
        raise ValueError("pool_size must be >= 0 and pool_parallel >= 1")
    return config


def parse_config(argv: Sequence[str], environ: Mapping[str, str]) -> ServerConfig:
    parser = argparse.ArgumentParser(prog="codebeaker serve")
    add_arguments(parser)
    return build_config(parser.parse_args(argv), environ)
