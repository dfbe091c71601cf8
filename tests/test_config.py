"""Config loading: files, environment overrides, secrets and error messages that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli.main import main
from bot.config.settings import ConfigError, load_settings, validate_file

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("clean_bot_env")


@pytest.mark.parametrize("name", ["backtest.toml", "paper.toml"])
def test_shipped_configs_are_valid(name):
    assert validate_file(ROOT / "config" / name) == []


def test_live_example_needs_keys_and_accepts_them_from_env(monkeypatch):
    problems = validate_file(ROOT / "config" / "live.example.toml")
    assert len(problems) == 1, problems
    assert "exchange.api_key" in problems[0][1] and "BOT__EXCHANGE__API_KEY" in problems[0][1]
    monkeypatch.setenv("BOT__EXCHANGE__API_KEY", "k" * 16)
    monkeypatch.setenv("BOT__EXCHANGE__API_SECRET", "s" * 16)
    settings = load_settings(ROOT / "config" / "live.example.toml")
    assert settings.run.mode == "live"
    assert settings.exchange.api_secret.get_secret_value() == "s" * 16
    assert "s" * 16 not in repr(settings) and "s" * 16 not in str(settings.snapshot())


def test_wrong_type_and_unknown_key_are_named(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[risk]\nmax_drawdown = "lots"\nmax_drawdwn = 0.1\n[signal]\ndepth_levels = 0\n')
    problems = dict(validate_file(path))
    assert "risk.max_drawdown" in problems and "lots" in problems["risk.max_drawdown"]
    assert "risk.max_drawdwn" in problems and "unknown key" in problems["risk.max_drawdwn"]
    assert "signal.depth_levels" in problems


def test_toml_syntax_error_reports_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[risk]\nmax_drawdown = = 1\n")
    problems = validate_file(path)
    assert problems[0][0] == "<toml>" and "line 2" in problems[0][1]


def test_secret_in_file_is_refused(tmp_path):
    path = tmp_path / "leaky.toml"
    path.write_text('[exchange]\napi_secret = "hunter2hunter2"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.problems[0][0] == "exchange.api_secret"
    assert "hunter2hunter2" not in str(err.value)


def test_environment_overrides_file(monkeypatch):
    monkeypatch.setenv("BOT__RISK__MAX_DRAWDOWN", "0.03")
    monkeypatch.setenv("BOT__SIGNAL__DEPTH_LEVELS", "7")
    settings = load_settings(ROOT / "config" / "backtest.toml")
    assert settings.risk.max_drawdown == 0.03
    assert settings.signal.depth_levels == 7
    assert settings.risk.stop_loss_bps == 10.0  # untouched keys keep the file's value


def test_bad_environment_value_is_named(monkeypatch):
    monkeypatch.setenv("BOT__RISK__MAX_DRAWDOWN", "2")
    with pytest.raises(ConfigError) as err:
        load_settings(ROOT / "config" / "backtest.toml")
    assert any(key == "risk.max_drawdown" for key, _ in err.value.problems)


def test_dotenv_supplies_secrets(tmp_path):
    (tmp_path / ".env").write_text("BOT__EXCHANGE__API_KEY=fromdotenvkey\nBOT__EXCHANGE__API_SECRET=fromdotenvsecret\n")
    settings = load_settings(ROOT / "config" / "live.example.toml")
    assert settings.exchange.api_key.get_secret_value() == "fromdotenvkey"


def test_cross_field_rule(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text("[strategy]\nenter_threshold = 0.3\nexit_threshold = 0.5\n")
    problems = validate_file(path)
    assert problems and problems[0][0] == "strategy" and "exit_threshold" in problems[0][1]


def test_config_check_cli(tmp_path, capsys):
    assert main(["config", "check", str(ROOT / "config" / "backtest.toml")]) == 0
    assert "ok" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text("[risk]\nstop_loss_bps = -1\n[nope]\nx = 1\n")
    assert main(["config", "check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "risk.stop_loss_bps" in out and "nope" in out
    assert main(["config", "check", str(tmp_path / "missing.toml")]) == 1
    assert "cannot read" in capsys.readouterr().out


def test_daemon_refuses_a_store_without_fsync():
    """store.synchronous = "off" is accepted for backtests and refused by the daemon, with the reason."""
    from bot.engine.daemon import DaemonError, check_live_allowed

    backtest = load_settings(ROOT / "config" / "backtest.toml")
    assert backtest.store.synchronous == "off"
    paper = load_settings(ROOT / "config" / "paper.toml", store={"synchronous": "off"})
    with pytest.raises(DaemonError, match="synchronous"):
        check_live_allowed(paper, live_flag=False)
    check_live_allowed(load_settings(ROOT / "config" / "paper.toml"), live_flag=False)
