"""numba's cache directory is keyed on every module of bot.fast, so an edit to a module a kernel
inlines (numba itself only checks the kernel's own file) can never run stale machine code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import bot.fast
from bot.fast import cache_leaf

FAST = Path(bot.fast.__file__).resolve().parent


def test_an_edit_to_any_module_of_the_package_changes_the_cache_directory(tmp_path):
    copy = tmp_path / "fast"
    copy.mkdir()
    for f in FAST.glob("*.py"):
        shutil.copy(f, copy / f.name)
    before = cache_leaf(copy)
    assert before == cache_leaf(FAST)
    inlined = copy / "flow_kernel.py"  # inlined into kernel.py's functions: numba would not notice
    inlined.write_text(inlined.read_text() + "\n# edited\n")
    assert cache_leaf(copy) != before


def _cache_dir_seen(env: dict[str, str]) -> str:
    code = "import os, bot.fast; print(os.environ['NUMBA_CACHE_DIR']); print(bot.fast.NUMBA_CACHE_DIR)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=FAST.parents[1]).stdout.split()
    assert out[0] == out[1]
    return out[0]


def test_the_directory_is_set_for_numba_kept_by_children_and_nested_under_a_users_own(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    default = _cache_dir_seen(env)
    assert Path(default) == FAST / "__pycache__" / cache_leaf(FAST)
    assert _cache_dir_seen({**env, "NUMBA_CACHE_DIR": default}) == default  # a child process: same key, same place
    mine = tmp_path / "numba-cache"
    assert Path(_cache_dir_seen({**env, "NUMBA_CACHE_DIR": str(mine)})) == mine / cache_leaf(FAST)
