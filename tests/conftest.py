"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest


def shared_data_dir() -> Path:
    """``../shared/data`` next to the repository: real recordings, mounted only on some machines.

    Tests that need it skip with a clear reason when it is absent (never copy the data into the repo).
    """
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def emulator(tmp_path):
    """A spot emulator process on the built-in simulator (tests/daemon_harness.py), stopped after the test.
    A test module that needs another one (several symbols, other balances) defines its own."""
    from daemon_harness import Emulator

    emu = Emulator(tmp_path)
    yield emu
    emu.stop()


@pytest.fixture
def clean_bot_env(monkeypatch, tmp_path):
    """No BOT__ variable or .env from the developer's shell may leak into a test; it runs in tmp_path."""
    import os

    for key in list(os.environ):
        if key.upper().startswith("BOT__"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
