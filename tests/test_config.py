"""Settings come from defaults, a TOML file, NOTIFYD_* variables and flags, in that order."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from click.testing import CliRunner

from notifyd.cli import main
from notifyd.config import load_settings
from notifyd.errors import ConfigError
from notifyd.plugins import load_registry
from tests.conftest import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "config" / "notifyd.example.toml"


def test_example_config_is_valid() -> None:
    settings = load_settings(EXAMPLE, environ={})
    assert settings.port == 8089
    assert settings.profiles_dir is None  # the shipped profiles
    assert settings.database_path == Path("/var/lib/notifyd/notifyd.sqlite3")


def test_the_example_works_copied_to_etc_notifyd(tmp_path: Path) -> None:
    """The README's host install copies it to /etc/notifyd: nothing in it may point at the
    checkout it came from."""
    etc = tmp_path / "etc" / "notifyd"
    etc.mkdir(parents=True)
    (etc / "notifyd.toml").write_text(EXAMPLE.read_text())
    settings = load_settings(etc / "notifyd.toml", {"data_dir": tmp_path / "var"}, environ={})
    registry = load_registry(settings)
    assert len(registry.services) == 3
    assert sum(len(p) for p in registry.profiles.values()) == 5


def test_environment_overrides_file_and_flags_override_both(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('port = 9000\nallowed_api_urls = ["http://a:8080"]\n')
    environ = {
        "NOTIFYD_PORT": "9100",
        "NOTIFYD_ALLOWED_API_URLS": "http://b:8080, https://c.example/bim/",
        "NOTIFYD_ALLOWED_IPS": "10.0.0.0/8,::1/128",
    }
    settings = load_settings(config, {"port": 9200}, environ)
    assert settings.port == 9200
    assert settings.allowed_api_urls == ["http://b:8080", "https://c.example/bim"]
    assert settings.allowed_ips == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    ]
    assert load_settings(config, {}, {"NOTIFYD_PORT": "9100"}).port == 9100


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("prot = 1\n", {}, "unknown setting 'prot'"),
        ('port = "eighty"\n', {}, "port (in"),
        ("", {"NOTIFYD_PORT": "x"}, "port (from NOTIFYD_PORT)"),
        ('allowed_api_urls = ["ftp://x"]\n', {}, "'ftp://x' is not an http(s) URL"),
        ('log_format = "xml"\n', {}, "log_format"),
        ("port = [\n", {}, "is not valid TOML"),
        ('secret_path = "a/b"\n', {}, "single path segment"),
        ("heartbeat_seconds = 90\n", {}, "must be shorter than lease_seconds (60.0)"),
        ("", {"NOTIFYD_RUN_WORKER": "perhaps"}, "run_worker (from NOTIFYD_RUN_WORKER)"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, text: str, environ: dict, expected: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_settings(config, environ=environ)
    assert expected in str(error.value)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_base_path_is_normalised() -> None:
    assert load_settings(None, {"base_path": "bim/"}, {}).base_path == "/bim"
    assert load_settings(None, {"base_path": "/"}, {}).base_path == ""


def test_check_config_accepts_the_example() -> None:
    result = CliRunner().invoke(main, ["check-config", "--config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "3 services, 5 profiles" in result.output


def test_check_config_names_the_bad_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("max_body_bytes = 3\n")
    result = CliRunner().invoke(main, ["check-config", "--config", str(config)])
    assert result.exit_code == 1
    assert "max_body_bytes" in result.output
    assert "greater than or equal to 1024" in result.output


def test_check_config_names_a_bad_profile(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles" / "ifc-summary"
    profiles.mkdir(parents=True)
    (profiles / "broken.toml").write_text(
        'identifier = "broken"\nname = "B"\n[settings]\ninclude_quantities = "maybe"\n'
    )
    config = tmp_path / "c.toml"
    config.write_text('profiles_dir = "profiles"\n')
    result = CliRunner().invoke(main, ["check-config", "--config", str(config)])
    assert result.exit_code == 1
    assert "broken.toml" in result.output
    assert "include_quantities" in result.output


def test_check_config_names_a_profile_of_an_unknown_service(tmp_path: Path) -> None:
    (tmp_path / "profiles" / "no-such-service").mkdir(parents=True)
    (tmp_path / "profiles" / "no-such-service" / "p.toml").write_text('identifier="p"\nname="P"\n')
    config = tmp_path / "c.toml"
    config.write_text('profiles_dir = "profiles"\n')
    result = CliRunner().invoke(main, ["check-config", "--config", str(config)])
    assert result.exit_code == 1
    assert "no-such-service" in result.output
