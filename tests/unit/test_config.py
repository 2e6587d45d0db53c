"""One typed config from flags and CODEBEAKER_* variables; the README documents all of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from codebeaker.runtimes.catalog import Catalog
from codebeaker.server.config import ServerConfig, parse_config, settings_fields
from codebeaker.server.options import parse_size

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_without_flags_or_env() -> None:
    assert parse_config([], {}) == ServerConfig()


def test_env_fills_in_and_a_flag_beats_it() -> None:
    env = {"CODEBEAKER_MAX_CONCURRENCY": "3", "CODEBEAKER_ADDRESS": "127.0.0.1:1"}
    config = parse_config(["--address", "127.0.0.1:2"], env)
    assert config.service.max_concurrency == 3
    assert config.service.address == "127.0.0.1:2"


def test_sizes_take_suffixes() -> None:
    assert parse_size("64K") == 64 << 10
    assert parse_size("256M") == 256 << 20
    assert parse_size("1G") == 1 << 30
    assert parse_size("1000") == 1000
    config = parse_config(["--default-memory", "128M"], {"CODEBEAKER_MAX_OUTPUT": "2M"})
    assert config.limits.default_memory == 128 << 20
    assert config.limits.max_output == 2 << 20


@pytest.mark.parametrize(
    ("argv", "env", "problem"),
    [
        ([], {"CODEBEAKER_DEFAULT_MEMORY": "lots"}, "CODEBEAKER_DEFAULT_MEMORY"),
        (["--default-wall-time", "500", "--max-wall-time", "100"], {}, "wall_time"),
        (["--max-concurrency", "0"], {}, "max_concurrency"),
        (["--pool-languages", "python,no-such-language"], {}, "pool_languages"),
        (["--pool-size", "-1"], {}, "pool_size"),
        (["--language-runtimes", "python"], {}, "language_runtimes"),
    ],
)
def test_bad_settings_are_refused_with_their_name(
    argv: list[str], env: dict[str, str], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_config(argv, env)


def test_readme_documents_every_setting() -> None:
    text = README.read_text()
    for _, config_field in settings_fields():
        flag = "--" + config_field.name.replace("_", "-")
        env = "CODEBEAKER_" + config_field.name.upper()
        assert f"| `{flag}` | `{env}` |" in text, f"README lacks {flag}"


def test_language_names_in_settings_resolve_to_ids() -> None:
    catalog = Catalog.load()
    config = parse_config(["--pool-languages", "py, c", "--language-runtimes", "js=runsc"], {})
    pools = config.pools.settings(catalog)
    assert pools.languages == frozenset({"python", "c"}) and not pools.pooled("rust")
    backend = config.backend.settings(catalog)
    assert backend.runtime_for("javascript") == "runsc" and not backend.resizable("javascript")
    assert backend.runtime_for("python") == "runc" and backend.resizable("python")
    default = parse_config([], {}).pools.settings(catalog)
    warm = frozenset(spec.id for spec in catalog.specs() if spec.warm)
    assert default.languages == warm and default.pooled("rust") and "python" in warm


def test_settings_are_set_by_name_in_whichever_section_holds_them() -> None:
    config = ServerConfig().with_values(pool_size=0, address="127.0.0.1:0", runtime="runsc")
    assert config.pools.pool_size == 0
    assert config.service.address == "127.0.0.1:0"
    assert config.backend.runtime == "runsc"
    assert config.limits == ServerConfig().limits
    with pytest.raises(TypeError, match="no such setting: pool_sise"):
        ServerConfig().with_values(pool_sise=1)


def test_setting_names_are_unique_across_sections() -> None:
    names = [config_field.name for _, config_field in settings_fields()]
    assert len(names) == len(set(names))
    assert {section for section, _ in settings_fields()} == {
        "service",
        "limits",
        "pools",
        "backend",
        "access",
        "state",
        "queue",
        "sessions",
        "catalog",
        "packages",
    }


def test_unknown_language_in_runtimes_is_refused() -> None:
    with pytest.raises(ValueError, match="language_runtimes"):
        parse_config(["--language-runtimes", "cobol=runsc"], {})
