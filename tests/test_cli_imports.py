"""What a command imports before it starts: only what it needs (start-up is most of a short command).

Checked by module names in a fresh interpreter, not by timing: ``bot backtest`` must not pay for
the emulator's aiohttp, the recorder or the other commands' modules, and importing the logging
setup must not pull in rich's traceback renderer (structlog imports it when rich is installed,
for tracebacks the bot never renders).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def imported_after(code: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize("command", ["backtest", "report", "status", "tune", "research"])
def test_a_command_parser_builds_only_its_own_command(command):
    mods = imported_after(f"from bot.cli.main import build_parser\nbuild_parser([{command!r}, '--help'])")
    others = {"bot.emulator.cli", "bot.cli.record", "bot.cli.recorder", "bot.cli.demo", "bot.cli.compare", "bot.cli.inspect",
              "bot.research.command", "bot.tune.command", "bot.cli.backtest"}
    own = {"backtest": "bot.cli.backtest", "tune": "bot.tune.command", "research": "bot.research.command"}.get(command)
    assert not (mods & (others - {own})), sorted(mods & others)
    assert "aiohttp" not in mods


def test_the_full_parser_still_lists_every_command():
    from bot.cli.main import COMMANDS, build_parser

    for argv in ([], ["--help"], ["--help", "backtest"], ["backtst"]):
        out = build_parser(argv).format_help()
        for name in COMMANDS:
            assert name in out, (argv, name)


def test_logging_does_not_import_rich_and_rich_still_works_after():
    mods = imported_after("import bot.log")
    assert "structlog" in mods and not any(m == "rich" or m.startswith("rich.") for m in mods)
    mods = imported_after("import bot.log\nimport rich.progress\nrich.progress.Progress")
    assert "rich.progress" in mods
