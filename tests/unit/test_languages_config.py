"""Serving a subset, an operator's own languages, and the runtime images' names:
from the settings to the catalog, the backend and the containers it makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from codebeaker.runtimes.catalog import PACKAGES_DOCKERFILE, Catalog
from codebeaker.runtimes.docker.container import container_config
from codebeaker.runtimes.docker.labels import ImageNames
from codebeaker.runtimes.model import Limits
from codebeaker.server.backend import build_sandbox
from codebeaker.server.config import parse_config
from codebeaker.server.languages import CatalogConfig

TOY = """\
id = "toy"
name = "Toy"
aliases = ["toy1"]
file_name = "main.toy"
run = ["toy1", "{entrypoint}"]
version_command = ["toy1", "-v"]
"""
DOCKERFILE = "ARG BASE_IMAGE\nARG SUPERVISOR_IMAGE\nFROM ${BASE_IMAGE}\n"


def language(root: Path, folder: str, spec: str, dockerfile: bool = True) -> Path:
    directory = root / folder
    directory.mkdir(parents=True)
    (directory / "spec.toml").write_text(spec)
    if dockerfile:
        (directory / "Dockerfile").write_text(DOCKERFILE)
    return directory


def test_languages_serves_only_those_named_by_id_or_alias() -> None:
    config = parse_config(["--languages", "py, c,python"], {})
    assert [spec.id for spec in config.catalog.catalog().specs()] == ["c", "python"]
    everything = parse_config([], {}).catalog.catalog()
    assert "rust" in {spec.id for spec in everything.specs()}


def test_the_subset_reaches_the_pools_and_the_backend() -> None:
    config = parse_config(
        ["--languages", "js,bash", "--isolation", "container", "--pool-size", "1"], {}
    )
    sandbox = build_sandbox(config, config.catalog.catalog())
    assert set(sandbox.pools) == {"bash", "javascript"}  # type: ignore[attr-defined]


def test_settings_that_name_unserved_languages_are_refused() -> None:
    with pytest.raises(ValueError, match=r"languages: .*no-such-language"):
        parse_config(["--languages", "python,no-such-language"], {})
    with pytest.raises(ValueError, match="pool_languages"):
        parse_config(["--languages", "python", "--pool-languages", "c"], {})


def test_a_languages_dir_adds_its_languages(tmp_path: Path) -> None:
    language(tmp_path, "toy", TOY)
    (tmp_path / ".git").mkdir()  # hidden folders are not languages
    config = parse_config([], {"CODEBEAKER_LANGUAGES_DIR": str(tmp_path)})
    catalog = config.catalog.catalog()
    toy = catalog.resolve("TOY1")
    assert (toy.id, toy.directory) == ("toy", tmp_path / "toy")
    assert catalog.resolve("python").id == "python"  # the built-ins stay
    only = parse_config(["--languages-dir", str(tmp_path), "--languages", "toy"], {})
    assert [spec.id for spec in only.catalog.catalog().specs()] == ["toy"]


@pytest.mark.parametrize(
    ("folder", "spec", "problem"),
    [
        ("toy", TOY.replace('name = "Toy"\n', ""), "the field name is missing"),
        ("toy", TOY.replace('["toy1", "-v"]', '"toy1 -v"'), "version_command must be a list"),
        ("toy", TOY.replace("id =", "id = = "), "spec.toml: Invalid"),
        ("toy", TOY.replace('run = ["toy1", "{entrypoint}"]', 'run = ["toy1"]'), "mention"),
        ("toy", TOY.replace('id = "toy"', 'id = "moon"'), "must match its folder name"),
        ("Toy", TOY.replace('id = "toy"', 'id = "Toy"'), "must be lowercase"),
        ("python", TOY.replace("toy", "python"), "the id 'python' is taken by the language in"),
        ("toy", TOY.replace('["toy1"]', '["py"]'), "the name 'py' is already claimed"),
        ("toy", TOY + 'packages_command = "toy1 -l pkgs"\n', "packages_command must be a list"),
        ("toy", TOY + "warm = 1\n", "warm must be true or false"),
        ("toy", TOY + "file_name_from = '(unclosed'\n", "file_name_from is not a regular"),
        ("toy", TOY + "file_name_from = 'class \\w+'\n", "file_name_from needs a group"),
        ("toy", TOY + 'debian_packages = ["toy"]\n', "for a folder without a Dockerfile"),
        ("toy", TOY + 'debian_packages = "toy"\n', "debian_packages must be a list"),
    ],
)
def test_a_broken_language_folder_is_refused_naming_folder_and_field(
    tmp_path: Path, folder: str, spec: str, problem: str
) -> None:
    directory = language(tmp_path, folder, spec)
    with pytest.raises(ValueError, match="languages_dir: ") as raised:
        CatalogConfig(languages_dir=str(tmp_path)).catalog()
    assert str(directory) in str(raised.value)
    assert problem in str(raised.value)


@pytest.mark.parametrize("name", ["Toy", "toy; rm -rf /", "-toy", "t", "toy pkg"])
def test_debian_packages_must_be_package_names(tmp_path: Path, name: str) -> None:
    language(tmp_path, "toy", TOY + f"debian_packages = [{name!r}]\n", dockerfile=False)
    with pytest.raises(ValueError, match="must be Debian package names"):
        CatalogConfig(languages_dir=str(tmp_path)).catalog()


def test_a_folder_without_a_dockerfile_names_its_debian_packages(tmp_path: Path) -> None:
    language(tmp_path, "toy", TOY + 'debian_packages = ["toy-compiler", "libc6-dev"]\n', False)
    toy = CatalogConfig(languages_dir=str(tmp_path)).catalog().resolve("toy")
    assert toy.dockerfile == PACKAGES_DOCKERFILE
    assert toy.debian_packages == ("toy-compiler", "libc6-dev")
    lua, go = Catalog.load().resolve("lua"), Catalog.load().resolve("go")
    assert (lua.dockerfile, lua.debian_packages) == (PACKAGES_DOCKERFILE, ("lua5.4",))
    assert (go.dockerfile, go.debian_packages) == (go.directory / "Dockerfile", ())


def test_python_and_javascript_say_how_to_list_their_packages(tmp_path: Path) -> None:
    catalog = Catalog.load()
    assert catalog.resolve("python").packages_command[0] == "python3"
    assert catalog.resolve("js").packages_command[0] == "node"
    assert catalog.resolve("bash").packages_command == ()
    language(tmp_path, "toy", TOY + 'packages_command = ["toy1", "pkgs.toy"]\n')
    toy = CatalogConfig(languages_dir=str(tmp_path)).catalog().resolve("toy")
    assert toy.packages_command == ("toy1", "pkgs.toy")


def test_the_catalog_takes_the_packages_read_from_the_images() -> None:
    catalog = Catalog.load().only(["python", "js", "c"])
    found = catalog.with_packages({"python": {"numpy": "1.24.2"}, "javascript": {}})
    assert dict(found.resolve("python").packages) == {"numpy": "1.24.2"}
    assert dict(found.resolve("js").packages) == {}
    assert dict(found.resolve("c").packages) == {}  # not read: kept as it was
    assert dict(catalog.resolve("python").packages) == {}  # a copy: the original unchanged
    again = found.with_versions({"python": "3.11.2"})
    assert dict(again.resolve("python").packages) == {"numpy": "1.24.2"}


def test_a_languages_dir_that_is_not_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a folder of language folders"):
        CatalogConfig(languages_dir=str(tmp_path / "absent")).catalog()
    (tmp_path / "notes").mkdir()
    with pytest.raises(ValueError, match=r"notes: a language folder needs a spec\.toml"):
        CatalogConfig(languages_dir=str(tmp_path)).catalog()


def test_image_names_follow_prefix_and_tag_into_the_container() -> None:
    config = parse_config(
        ["--image-prefix", "registry.example:5000/team/cb-", "--image-tag", "2026.12"], {}
    )
    catalog = config.catalog.catalog()
    settings = config.backend.settings(catalog, {})
    made = container_config(catalog.resolve("py"), Limits(1, 1, 1 << 20, 8, 1024), settings, "x")
    assert made["Image"] == "registry.example:5000/team/cb-python:2026.12"
    assert settings.images.supervisor == "registry.example:5000/team/cb-supervisor:2026.12"
    default = parse_config([], {}).backend.settings(catalog, {})
    assert container_config(catalog.resolve("py"), Limits(1, 1, 1 << 20, 8, 1024), default, "x")[
        "Image"
    ] == ("codebeaker/python")


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--image-prefix", "team/Cb-"], "image_prefix"),
        (["--image-prefix", "code beaker/"], "image_prefix"),
        (["--image-tag", "a:b"], "image_tag"),
        (["--image-tag=-x"], "image_tag"),
        (["--docker-host", "ssh://me@engine"], "docker_host: unsupported"),
        (["--docker-host", "tcp://:2375"], "docker_host"),
    ],
)
def test_bad_image_and_engine_settings_are_refused_with_their_name(
    argv: list[str], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_config(argv, {})


def test_image_names_default_to_codebeaker_and_latest() -> None:
    assert ImageNames().named("python") == "codebeaker/python"
    assert ImageNames("cb-", "v1").supervisor == "cb-supervisor:v1"


def test_the_engine_address_and_tls_come_from_dockers_variables(tmp_path: Path) -> None:
    catalog = parse_config([], {}).catalog.catalog()
    config = parse_config([], {}).backend
    settings = config.settings(catalog, {"DOCKER_HOST": "tcp://127.0.0.1:2376"})
    assert settings.address().port == 2376 and settings.tls is None
    tls_env = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)}
    with pytest.raises(ValueError, match="DOCKER_CERT_PATH"):
        config.settings(catalog, {**tls_env, "DOCKER_HOST": "tcp://h:1"})
    assert config.settings(catalog, tls_env).tls is None  # a unix socket speaks no TLS
    (tmp_path / "ca.pem").write_text("x")
    tls = config.settings(
        catalog,
        {"DOCKER_HOST": "tcp://h:1", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)},
    )
    assert tls.address().tls is not None and tls.address().tls.verify  # type: ignore[union-attr]
    explicit = parse_config(["--docker-host", "unix:///x.sock"], {}).backend
    assert explicit.settings(catalog, {"DOCKER_HOST": "tcp://h:1"}).docker_host == "unix:///x.sock"
