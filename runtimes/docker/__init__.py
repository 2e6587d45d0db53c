"""The Docker implementation of the Sandbox interface."""

from codebeaker.runtimes.docker.sandbox import DockerSandbox
from codebeaker.runtimes.docker.settings import DockerSettings

__all__ = ["DockerSandbox", "DockerSettings"]
