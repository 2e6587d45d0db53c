"""What the numbers were measured on: cores, memory, kernel, engine, interpreters."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from bench.bare import Interpreter
from bench.engine import api_client
from bench.programs import PROGRAMS
from codebeaker.runtimes.docker.labels import VERSION_LABEL


def _meminfo_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine_info(interpreters: dict[str, Interpreter | None]) -> dict[str, object]:
    api = api_client()
    try:
        version = api.version()
        images: dict[str, object] = {}
        for program in PROGRAMS.values():
            inspected: dict[str, Any] = api.inspect_image(program.image)  # type: ignore[no-untyped-call]
            labels = (inspected.get("Config") or {}).get("Labels") or {}
            images[program.image] = {"version": labels.get(VERSION_LABEL, "")}
    finally:
        api.close()
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_bytes": _meminfo_total(),
        "memory_gib": round(_meminfo_total() / 2**30, 1),
        "kernel": platform.release(),
        "os": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "docker_server_version": version.get("Version", ""),
        "docker_api_version": version.get("ApiVersion", ""),
        "bench_python": platform.python_version(),
        "host_interpreters": {
            language: (None if found is None else {"path": found.path, "version": found.version})
            for language, found in interpreters.items()
        },
        "images": images,
    }
