"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path


def shared_data_dir() -> Path:
    """``../shared/data`` next to the repository: real recordings, mounted only on some machines.

    Tests that need it skip with a clear reason when it is absent (never copy the data into the repo).
    """
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"
