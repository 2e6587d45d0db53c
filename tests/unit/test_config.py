"""One typed config from flags and CODEBEAKER_* variables; the README documents all of it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from codebeaker.runtimes.catalog import Catalog
from codebeaker.server.config import ServerConfig, parse_config, parse_size

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_without_flags_or_env() -> None:
    assert parse_config([], {}) == ServerConfig()


def test_env_fills_in_and_a_flag_beats_it() -> None:
    env = {"CODEBEAKER_MAX_CONCURRENCY": "3", "CODEBEAKER_ADDRESS": "127.0.0.1:1"}
    config = parse_config(["--address", "127.0.0.1:2"], env)
    assert config.max_concurrency == 3
    assert config.address == "127.0.0.1:2"


def test_sizes_take_suffixes() -> None:
    assert parse_size("64K") == 64 << 10
    assert parse_size("256M") == 256 << 20
    assert parse_size("1G") == 1 << 30
    assert parse_size("1000") == 1000
    config = parse_config(["--default-memory", "128M"], {"CODEBEAKER_MAX_OUTPUT": "2M"})
    assert config.default_memory == 128 << 20
    assert config.max_output == 2 << 20


@pytest.mark.parametrize(
    ("argv", "env", "problem"),
    [
        ([], {"CODEBEAKER_DEFAULT_MEMORY": "lots"}, "CODEBEAKER_DEFAULT_MEMORY"),
        (["--default-wall-time", "500", "--max-wall-time", "100"], {}, "wall_time"),
        (["--max-concurrency", "0"], {}, "max_concurrency"),
        (["--pool-languages", "python,cobol"], {}, "pool_languages"),
    ],
)
def test_bad_settings_are_refused_with_their_name(
    argv: list[str], env: dict[str, str], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_config(argv, env)


def test_readme_documents_every_setting() -> None:
    text = README.read_text()
    for config_field in dataclasses.fields(ServerConfig):
        flag = "--" + config_field.name.replace("_", "-")
        env = "CODEBEAKER_" + config_field.name.upper()
        assert f"| `{flag}` | `{env}` |" in text, f"README lacks {flag}"


def test_language_names_in_settings_resolve_to_ids() -> None:
    catalog = Catalog.load()
    config = parse_config(["--pool-languages", "py, c", "--language-runtimes", "js=runsc"], {})
    settings = config.docker_settings(catalog)
    assert settings.pool_languages == {"python", "c"}
    assert settings.runtime_for("javascript") == "runsc" and not settings.resizable("javascript")
    everything = parse_config([], {}).docker_settings(catalog)
    assert everything.pool_languages == frozenset() and everything.pooled("rust")


def test_unknown_language_in_runtimes_is_refused() -> None:
    with pytest.raises(ValueError, match="language_runtimes"):
        parse_config(["--language-runtimes", "cobol=runsc"], {})
