"""numba's cache directory is keyed on every module of bot.fast, so an edit to a module a kernel
inlines (numba itself only checks the kernel's own file) can never run stale machine code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import bot.fast
from bot.fast import COMPILED_FROM, cache_leaf

FAST = Path(bot.fast.__file__).resolve().parent
SOURCES = [FAST.parent / name for name in COMPILED_FROM]


def test_an_edit_to_any_module_the_kernels_compile_from_changes_the_cache_directory(tmp_path):
    copies = []
    for src in SOURCES:
        copy = tmp_path / src.name
        copy.mkdir()
        for f in src.glob("*.py"):
            shutil.copy(f, copy / f.name)
        copies.append(copy)
    before = cache_leaf(*copies)
    assert before == cache_leaf(*SOURCES)
    # inlined into kernel.py's functions, and a constant the kernel bakes in: numba notices neither
    for edited in (tmp_path / "fast" / "flow_kernel.py", tmp_path / "signals" / "rolling.py"):
        seen = cache_leaf(*copies)
        edited.write_text(edited.read_text() + "\n# edited\n")
        assert cache_leaf(*copies) != seen
    assert cache_leaf(*copies) != before


def _cache_dir_seen(env: dict[str, str]) -> str:
    code = "import os, bot.fast; print(os.environ['NUMBA_CACHE_DIR']); print(bot.fast.NUMBA_CACHE_DIR)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=FAST.parents[1]).stdout.split()
    assert out[0] == out[1]
    return out[0]


def test_the_directory_is_set_for_numba_kept_by_children_and_nested_under_a_users_own(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    default = _cache_dir_seen(env)
    assert Path(default) == FAST / "__pycache__" / cache_leaf(*SOURCES)
    assert _cache_dir_seen({**env, "NUMBA_CACHE_DIR": default}) == default  # a child process: same key, same place
    mine = tmp_path / "numba-cache"
    assert Path(_cache_dir_seen({**env, "NUMBA_CACHE_DIR": str(mine)})) == mine / cache_leaf(*SOURCES)
