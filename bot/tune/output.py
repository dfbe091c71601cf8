"""Write a complete config file (every section and key) for a tuned candidate."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from bot.config.settings import SECRET_KEYS, Settings, load_settings, validate_file
from bot.tune.space import to_overrides


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # strategy.params, signal coefficients: an inline table
        return "{" + ", ".join(f"{_toml_value(str(k))} = {_toml_value(v)}" for k, v in value.items() if v is not None) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def settings_to_toml(settings: Settings, header: list[str] | None = None, tuned: dict[str, Any] | None = None) -> str:
    """Every section and key of ``settings`` as TOML, secrets left out (they come from the environment).

    Keys whose value is unset (None) cannot be written in TOML; they appear as comments. Tuned
    keys are marked with a trailing comment.
    """
    data = settings.snapshot()
    data.get("exchange", {}).pop("api_key_set", None)
    data.get("http", {}).pop("token_set", None)
    tuned = tuned or {}
    lines = [f"# {h}" if h else "#" for h in (header or [])]
    for section in Settings.model_fields:
        body = data.get(section)
        if section == "markets" and isinstance(body, list):
            for market in body:
                lines += ["", "[[markets]]"] + [f"{k} = {_toml_value(v)}" for k, v in market.items() if v is not None]
            continue
        if not isinstance(body, dict):
            continue
        if lines:
            lines.append("")
        lines.append(f"[{section}]")
        for key, value in body.items():
            if key in SECRET_KEYS:
                continue
            if value is None:
                lines.append(f"# {key} = (not set)")
                continue
            mark = "  # tuned" if f"{section}.{key}" in tuned else ""
            lines.append(f"{key} = {_toml_value(value)}{mark}")
    return "\n".join(lines) + "\n"


def write_config(path: str | Path, base_config: str | Path, params: dict[str, Any], header: list[str]) -> list[tuple[str, str]]:
    """Write the full config of ``base_config`` + ``params`` to ``path`` atomically.

    The file is checked with :func:`bot.config.settings.validate_file` before it replaces
    ``path``; the problems are returned (empty = written and valid).
    """
    settings = load_settings(base_config, **to_overrides(params))
    text = settings_to_toml(settings, header, params)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".best-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        problems = validate_file(tmp)
        if problems:
            return problems
        os.replace(tmp, path)
        tmp = ""
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
    return []
