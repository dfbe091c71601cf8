"""Configuration: TOML files in ``config/``, environment overrides, secrets from the environment."""

from bot.config.settings import ConfigError, Settings, load_settings, validate_file

__all__ = ["ConfigError", "Settings", "load_settings", "validate_file"]
