"""Settings layers: defaults < qortex.toml < QORTEX_* env < overrides."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from qortex.errors import ConfigError
from qortex.settings import SEED_ALIASES, Settings, load_settings, unneeded_seed_variables


def write(tmp_path: Path, text: str, name: str = "qortex.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory without a qortex.toml (the repository root has one)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults(empty_dir: Path) -> None:
    s = load_settings(env={})
    assert s == Settings()
    assert s.host == "127.0.0.1"
    assert s.port == 8000
    assert s.db == "qortex.db"
    assert s.api_key == ""
    assert s.replicas == 1  # a floor: the trust engine adds copies while unsure
    assert s.quorum == 1  # majority of 1
    assert s.max_replicas == 10  # room for new miners to outvote a liar
    assert s.target_error == 1e-3
    assert s.fault_fraction == 0.1
    assert s.check_rate == 0.1
    assert s.checker is True
    assert s.lease_seconds == 30.0
    assert s.result_timeout_ms == 30_000
    assert s.max_tweets_per_task == 5
    assert s.max_request_bytes == 4 * 1024 * 1024
    assert s.max_message_bytes == 1024 * 1024
    assert s.sync == "full"
    assert s.trusted_proxies == ["127.0.0.1", "::1"]
    assert s.log_level == "info"
    assert s.lease_limit_seconds == 30.0


def test_default_config_is_read_from_the_working_directory(empty_dir: Path) -> None:
    write(empty_dir, "port = 9100\n")
    assert load_settings(env={}).port == 9100


def test_toml_file_overrides_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'host = "0.0.0.0"\nport = 9001\nreplicas = 3\nlease_seconds = 12.5\n'
        'trusted_proxies = ["10.0.0.1"]\nsync = "normal"\n',
    )
    s = load_settings(config=path, env={})
    assert (s.host, s.port, s.replicas, s.lease_seconds) == ("0.0.0.0", 9001, 3, 12.5)
    assert s.trusted_proxies == ["10.0.0.1"]
    assert s.sync == "normal"
    assert s.quorum == 2
    assert s.max_replicas == 10
    assert s.db == "qortex.db"  # untouched keys keep their defaults


def test_config_path_may_be_a_string(tmp_path: Path) -> None:
    path = write(tmp_path, "port = 9002\n", name="custom.toml")
    assert load_settings(config=str(path), env={}).port == 9002


def test_int_in_toml_for_a_float_field(tmp_path: Path) -> None:
    s = load_settings(config=write(tmp_path, "lease_seconds = 7\n"), env={})
    assert s.lease_seconds == 7.0
    assert isinstance(s.lease_seconds, float)


def test_precedence_defaults_toml_env_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, 'port = 9001\nhost = "file-host"\ndb = "file.db"\n')
    env = {"QORTEX_PORT": "9002", "QORTEX_HOST": "env-host"}
    s = load_settings(config=path, env=env, overrides={"port": 9003})
    assert s.port == 9003  # override beats env beats file
    assert s.host == "env-host"  # env beats file
    assert s.db == "file.db"  # file beats default
    assert s.api_key == ""  # default
    # a None override is "not given"
    assert load_settings(config=path, env=env, overrides={"port": None}).port == 9002


def test_env_values_are_coerced(empty_dir: Path) -> None:
    env = {
        "QORTEX_PORT": "9005",
        "QORTEX_LEASE_SECONDS": "2.5",
        "QORTEX_REPLICAS": " 7 ",
        "QORTEX_LOG_LEVEL": "debug",
    }
    s = load_settings(env=env)
    assert s.port == 9005
    assert s.lease_seconds == 2.5
    assert s.replicas == 7
    assert s.quorum == 4
    assert s.max_replicas == 13
    assert s.log_level == "debug"


def test_env_without_prefix_or_in_lower_case_is_ignored(empty_dir: Path) -> None:
    assert load_settings(env={"qortex_port": "2", "QORTEX_BOGUS": "3", "port": "4"}).port == 8000


@pytest.mark.parametrize(
    ("alias", "value", "field", "expected"),
    [
        ("API_KEY_SECRET", "s3cret-0123456789", "api_key", "s3cret-0123456789"),
        ("DISPATCH_REPLICAS", "3", "replicas", 3),
        ("RESULT_TIMEOUT_MS", "4500", "result_timeout_ms", 4500),
        ("MAX_TWEETS_PER_TASK", "20", "max_tweets_per_task", 20),
        ("PORT", "9100", "port", 9100),
        ("DATABASE_PATH", "data/q.db", "db", "data/q.db"),
        (
            "ALLOWED_ORIGINS",
            "https://a.org,https://b.org",
            "cors_origins",
            ["https://a.org", "https://b.org"],
        ),
    ],
)
def test_seed_aliases_are_honoured(
    empty_dir: Path, alias: str, value: str, field: str, expected: object
) -> None:
    assert SEED_ALIASES[alias] == field
    assert getattr(load_settings(env={alias: value}), field) == expected


def test_seed_alias_beats_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "replicas = 4\n")
    assert load_settings(config=path, env={"DISPATCH_REPLICAS": "3"}).replicas == 3


@pytest.mark.parametrize(
    ("alias", "prefixed", "field"),
    [
        ("API_KEY_SECRET", "QORTEX_API_KEY", "api_key"),
        ("DISPATCH_REPLICAS", "QORTEX_REPLICAS", "replicas"),
        ("RESULT_TIMEOUT_MS", "QORTEX_RESULT_TIMEOUT_MS", "result_timeout_ms"),
        ("MAX_TWEETS_PER_TASK", "QORTEX_MAX_TWEETS_PER_TASK", "max_tweets_per_task"),
        ("PORT", "QORTEX_PORT", "port"),
        ("DATABASE_PATH", "QORTEX_DB", "db"),
    ],
)
def test_qortex_prefix_beats_the_alias(
    empty_dir: Path, alias: str, prefixed: str, field: str
) -> None:
    width = 16 if field == "api_key" else 1  # a key must be long enough to be a key
    s = load_settings(env={alias: "3" * width, prefixed: "7" * width})
    assert str(getattr(s, field)) == "7" * width


def test_unneeded_seed_variables_say_why_once_each() -> None:
    env = {"MINER_SHARED_SECRET": "x", "QUORUM_CHECK_INTERVAL_MS": "500", "PORT": "1"}
    warnings = unneeded_seed_variables(env)
    assert len(warnings) == 2
    assert "MINER_SHARED_SECRET" in warnings[0] and "ed25519" in warnings[0]
    assert "QUORUM_CHECK_INTERVAL_MS" in warnings[1] and "arrives" in warnings[1]
    assert unneeded_seed_variables({}) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"log_format": "xml"}, "log_format"),
        ({"webhook_allow_networks": ["10.0.0.0/33"]}, "webhook_allow_networks"),
        ({"webhook_max_attempts": 0}, "webhook_max_attempts"),
        ({"patience_seconds": -1}, "patience_seconds"),
    ],
)
def test_new_settings_are_checked(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings(**kwargs)  # type: ignore[arg-type]


def test_lease_limit_is_capped_by_the_result_timeout(empty_dir: Path) -> None:
    s = load_settings(env={"RESULT_TIMEOUT_MS": "5000"})
    assert s.lease_limit_seconds == 5.0
    s = load_settings(env={"RESULT_TIMEOUT_MS": "60000", "QORTEX_LEASE_SECONDS": "12"})
    assert s.lease_limit_seconds == 12.0


@pytest.mark.parametrize(
    ("replicas", "quorum", "max_replicas"),
    [(1, 1, 10), (2, 2, 10), (5, 3, 10), (6, 4, 11), (9, 5, 17)],
)
def test_zero_quorum_is_a_majority_and_zero_max_is_ten_or_two_r_minus_one(
    replicas: int, quorum: int, max_replicas: int
) -> None:
    s = Settings(replicas=replicas, quorum=0, max_replicas=0)
    assert (s.quorum, s.max_replicas) == (quorum, max_replicas)


def test_explicit_quorum_and_max_are_kept() -> None:
    s = Settings(replicas=5, quorum=5, max_replicas=5)
    assert (s.quorum, s.max_replicas) == (5, 5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"replicas": 0},
        {"replicas": 3, "quorum": 4},
        {"replicas": 3, "quorum": -1},
        {"replicas": 3, "max_replicas": 2},
        {"sync": "off"},
        {"lease_seconds": 0},
        {"result_timeout_ms": -1},
        {"max_tweets_per_task": 0},
        {"commit_batch": 0},
    ],
)
def test_out_of_range_values_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Settings(**kwargs)  # type: ignore[arg-type]


def test_out_of_range_from_env_raises_config_error(empty_dir: Path) -> None:
    with pytest.raises(ConfigError, match="quorum"):
        load_settings(env={"QORTEX_REPLICAS": "3", "QORTEX_QUORUM": "4"})


def test_unknown_key_in_toml_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "port = 1\nprot = 2\nzzz = 3\n")
    with pytest.raises(ConfigError, match="unknown settings prot, zzz"):
        load_settings(config=path, env={})


def test_malformed_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"qortex\.toml"):
        load_settings(config=write(tmp_path, "port = = 1\n"), env={})


@pytest.mark.parametrize(
    "text",
    [
        'port = "eighty"\n',
        "port = 80.5\n",
        'lease_seconds = "soon"\n',
        "trusted_proxies = 5\n",
        "trusted_proxies = [1, 2]\n",
        "replicas = [3]\n",
    ],
)
def test_bad_type_in_toml_is_a_config_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="must be"):
        load_settings(config=write(tmp_path, text), env={})


@pytest.mark.parametrize(
    "text",
    [
        "port = true\n",
        'host = ["a", "b"]\n',
    ],
)
def test_wrong_toml_value_kinds_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_settings(config=write(tmp_path, text), env={})


@pytest.mark.parametrize(
    "env",
    [
        {"QORTEX_PORT": "abc"},
        {"QORTEX_PORT": ""},
        {"QORTEX_PORT": "80.0"},
        {"QORTEX_LEASE_SECONDS": "x"},
        {"DISPATCH_REPLICAS": "three"},
    ],
)
def test_bad_type_in_env_is_a_config_error(empty_dir: Path, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="must be of type"):
        load_settings(env=env)


def test_bad_type_in_overrides_is_a_config_error(empty_dir: Path) -> None:
    with pytest.raises(ConfigError, match="port must be of type int"):
        load_settings(env={}, overrides={"port": "x"})


def test_missing_explicit_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(config=tmp_path / "absent.toml", env={})


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(config=tmp_path, env={})


def test_list_from_comma_separated_env(empty_dir: Path) -> None:
    s = load_settings(env={"QORTEX_TRUSTED_PROXIES": " 10.0.0.1, 10.0.0.2 ,,::1, "})
    assert s.trusted_proxies == ["10.0.0.1", "10.0.0.2", "::1"]
    assert load_settings(env={"QORTEX_TRUSTED_PROXIES": ""}).trusted_proxies == []


def test_list_env_beats_toml_list(tmp_path: Path) -> None:
    path = write(tmp_path, 'trusted_proxies = ["1.1.1.1"]\n')
    s = load_settings(config=path, env={"QORTEX_TRUSTED_PROXIES": "2.2.2.2"})
    assert s.trusted_proxies == ["2.2.2.2"]


def test_every_field_can_be_set_from_env(empty_dir: Path) -> None:
    # setting: (env text, value it becomes)
    values: dict[str, tuple[str, object]] = {
        "host": ("h", "h"),
        "port": ("1", 1),
        "db": ("d.db", "d.db"),
        "api_key": ("k" * 16, "k" * 16),
        "replicas": ("2", 2),
        "quorum": ("1", 1),
        "max_replicas": ("4", 4),
        "target_error": ("0.01", 0.01),
        "fault_fraction": ("0.2", 0.2),
        "check_rate": ("0.5", 0.5),
        "checker": ("false", False),
        "lease_seconds": ("3.5", 3.5),
        "patience_seconds": ("0", 0.0),
        "result_timeout_ms": ("99", 99),
        "max_tweets_per_task": ("8", 8),
        "matmul_tile": ("16", 16),
        "max_request_bytes": ("10", 10),
        "max_message_bytes": ("11", 11),
        "ws_ping_seconds": ("1.5", 1.5),
        "heartbeat_seconds": ("2.5", 2.5),
        "handshake_seconds": ("4.5", 4.5),
        "sse_heartbeat_seconds": ("3.5", 3.5),
        "commit_batch": ("12", 12),
        "verify_threads": ("0", 0),
        "sync": ("normal", "normal"),
        "trusted_proxies": ("a,b", ["a", "b"]),
        "cors_origins": ("https://x.org", ["https://x.org"]),
        "api_rate": ("5.5", 5.5),
        "api_burst": ("6", 6),
        "miner_rate": ("7.5", 7.5),
        "miner_burst": ("8", 8),
        "max_pending": ("9", 9),
        "register_rate": ("1.5", 1.5),
        "register_burst": ("2", 2),
        "identity_rate": ("0.5", 0.5),
        "identity_burst": ("3", 3),
        "handshake_rate": ("2.5", 2.5),
        "handshake_burst": ("4", 4),
        "auth_failure_rate": ("0.25", 0.25),
        "auth_failure_burst": ("5", 5),
        "result_rate": ("6.5", 6.5),
        "result_burst": ("7", 7),
        "max_connections_per_address": ("8", 8),
        "head_seconds": ("2.5", 2.5),
        "max_subscribers": ("9", 9),
        "subscriber_bytes": ("1000", 1000),
        "log_level": ("warning", "warning"),
        "log_format": ("json", "json"),
        "max_schedule_days": ("2.5", 2.5),
        "webhook_allow_networks": ("10.0.0.0/8,::1/128", ["10.0.0.0/8", "::1/128"]),
        "webhook_retry_seconds": ("0.5", 0.5),
        "webhook_max_attempts": ("3", 3),
        "webhook_timeout_seconds": ("1.5", 1.5),
    }
    assert set(values) == {f.name for f in fields(Settings)}
    s = load_settings(env={f"QORTEX_{k.upper()}": text for k, (text, _) in values.items()})
    assert s == Settings(**{k: value for k, (_, value) in values.items()})


def test_the_shipped_qortex_toml_loads_to_the_defaults() -> None:
    shipped = Path(__file__).resolve().parent.parent / "qortex.toml"
    assert load_settings(config=shipped, env={}) == Settings()


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().port = 1  # type: ignore[misc]


def test_unknown_override_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        load_settings(env={}, overrides={"colour": "blue"})


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("1", True), ("on", True), ("no", False), ("0", False)]
)
def test_booleans_from_the_environment(text: str, value: bool) -> None:
    assert load_settings(env={"QORTEX_CHECKER": text}).checker is value


@pytest.mark.parametrize(
    ("name", "bad"),
    [("checker", "maybe"), ("target_error", "0"), ("fault_fraction", "1"), ("check_rate", "2")],
)
def test_trust_settings_out_of_range_are_refused(name: str, bad: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(env={f"QORTEX_{name.upper()}": bad})


def test_a_short_api_key_is_refused_with_how_to_make_one() -> None:
    with pytest.raises(ConfigError, match=r"at least 16 characters, got 1.*secrets\.token_urlsafe"):
        load_settings(env={"QORTEX_API_KEY": "k"})
    assert load_settings(env={"QORTEX_API_KEY": "k" * 16}).api_key == "k" * 16
