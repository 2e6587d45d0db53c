"""Request-time packages in the server: the settings, the allow-list, the cache, metrics.

`ExecutionSpec.packages` and `Session.packages` are checked against the
`--package-allowlist` file while the request is validated (`INVALID_ARGUMENT`
naming the package); the set is installed, or found in the cache, just before
the sandbox is made, and held while it runs (`FAILED_PRECONDITION` when the
install fails). Without an allow-list no request may ask for packages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from codebeaker.runtimes.catalog import Catalog
from codebeaker.runtimes.packages.allowlist import Allowlist
from codebeaker.runtimes.packages.cache import Installer, PackageCache
from codebeaker.server.options import SIZE, setting

INSTALL_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


@dataclass(frozen=True)
class PackagesConfig:
    package_allowlist: str = setting(
        "", "TOML file of the packages requests may ask for, per language (README); empty: none"
    )
    package_cache: str = setting(
        "", "folder of installed package sets; empty: <state-dir>/packages"
    )
    package_cache_size: int = setting(
        4 << 30, "installed package sets kept, in bytes; least recently used evicted", SIZE
    )
    package_install_timeout: float = setting(300.0, "seconds one package install may take")
    package_index: str = setting(
        "https://pypi.org/simple/", "the PyPI simple index pip installs from"
    )
    npm_registry: str = setting("https://registry.npmjs.org/", "the npm registry npm installs from")

    def allowlist(self, catalog: Catalog) -> Allowlist:
        """The allow-list file read and checked (a ValueError naming what is wrong)."""
        if not self.package_allowlist:
            return Allowlist()
        return Allowlist.load(Path(self.package_allowlist).expanduser(), catalog)

    def check(self, catalog: Catalog) -> None:
        self.allowlist(catalog)
        if self.package_cache_size <= 0:
            raise ValueError("package_cache_size must be positive")
        if self.package_install_timeout <= 0:
            raise ValueError("package_install_timeout must be positive")
        for name in ("package_index", "npm_registry"):
            if not getattr(self, name).startswith(("http://", "https://")):
                raise ValueError(f"{name} must be an http:// or https:// URL")

    def cache(
        self, installer: Installer, state_dir: Path, registry: CollectorRegistry
    ) -> PackageCache:
        root = (
            Path(self.package_cache).expanduser() if self.package_cache else state_dir / "packages"
        )
        return PackageCache(
            root,
            installer,
            self.package_cache_size,
            self.package_install_timeout,
            CacheMetrics(registry),
        )


class CacheMetrics:
    """The cache's Prometheus families."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self._hits = Counter(
            "codebeaker_package_cache_hits",
            "Requests for a package set that was installed already (or being installed).",
            ("language",),
            registry=r,
        )
        self._misses = Counter(
            "codebeaker_package_cache_misses",
            "Requests for a package set that had to be installed.",
            ("language",),
            registry=r,
        )
        self._installs = Histogram(
            "codebeaker_package_install_seconds",
            "Time one package set took to install, by outcome.",
            ("language", "outcome"),
            buckets=INSTALL_BUCKETS,
            registry=r,
        )
        self._bytes = Gauge(
            "codebeaker_package_cache_bytes", "Bytes of installed package sets kept.", registry=r
        )

    def hit(self, language: str) -> None:
        self._hits.labels(language).inc()

    def miss(self, language: str) -> None:
        self._misses.labels(language).inc()

    def installed(self, language: str, seconds: float, ok: bool) -> None:
        self._installs.labels(language, "ok" if ok else "failed").observe(seconds)

    def size(self, total_bytes: int) -> None:
        self._bytes.set(total_bytes)
