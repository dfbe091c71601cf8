"""Every config key has a row in the README's configuration table (a key nobody can look up is a trap)."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from bot.config.settings import Settings, SignalModel

README = Path(__file__).resolve().parents[1] / "README.md"


def documented() -> set[str]:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Configuration"):text.index("## Data formats")]
    keys: set[str] = set()
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        tokens = re.findall(r"`([a-z_][a-z0-9_.]*)`", first)
        prefix = ""
        for token in tokens:
            if "." in token:
                prefix = token.rsplit(".", 1)[0]
                keys.add(token)
            elif prefix:
                keys.add(f"{prefix}.{token}")  # `a.b.c` / `d`: d is a.b.d
            else:
                keys.add(token)
    return keys


def config_keys(model: type[BaseModel] = Settings, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        inner = [a for a in typing.get_args(field.annotation) or (field.annotation,) if isinstance(a, type) and issubclass(a, BaseModel)]
        if inner and inner[0] is not SignalModel and name != "markets":
            keys |= config_keys(inner[0], path + ".")
        else:
            keys.add(path)
    return keys


def test_every_config_key_is_in_the_readme_table():
    missing = sorted(config_keys() - documented())
    assert not missing, f"add rows to README.md's config table for: {', '.join(missing)}"
