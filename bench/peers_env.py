"""bench/.venv-peers: a separate virtualenv for the peer that cannot share ours.

epicbox 1.1.0 (its latest release) builds its Docker client with
`urllib3.util.retry.Retry(method_whitelist=False)`; urllib3 2.0 removed that
argument, so every `epicbox.run` fails with a TypeError under our urllib3 2.x
(pulled in by docker 7.x and requests). Pinning urllib3 < 2 in our own venv
would downgrade the server's and the SDK's HTTP stack for the sake of a
benchmark, so epicbox gets this venv instead, built here on first use and
rebuilt when the pins change. llm-sandbox coexists with our pins and comes
from the project's `bench` extra.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent / ".venv-peers"
REQUIREMENTS = (
    "epicbox==1.1.0",
    "urllib3==1.26.20",
    "docker==7.2.0",
    "requests==2.34.2",
    "structlog==26.1.0",
    "python-dateutil==2.9.0.post0",
)
STAMP = VENV / ".bench-requirements"


def peers_python() -> Path:
    """The venv's interpreter, (re)built if missing or stale; raises on failure."""
    python = VENV / "bin" / "python"
    wanted = hashlib.sha256("\n".join(REQUIREMENTS).encode()).hexdigest()
    if python.exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return python
    if VENV.exists():
        shutil.rmtree(VENV)
    print(f"bench: building {VENV.name} for epicbox (once)", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
    done = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *REQUIREMENTS,
        ],
        timeout=600,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip install into {VENV} failed: {done.stderr.strip()[-800:]}")
    STAMP.write_text(wanted + "\n")
    return python
