"""The Docker backend: hosts are hardened containers made by a Docker engine.

Only this folder names Docker: engine calls, the container's configuration,
the attach stream, labels and the image builder.
"""

from codebeaker.runtimes.docker.backend import DockerBackend
from codebeaker.runtimes.docker.settings import DockerSettings

__all__ = ["DockerBackend", "DockerSettings"]
