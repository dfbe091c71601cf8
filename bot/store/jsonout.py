"""Strict JSON for every ``--json`` output, written report and stored document.

Python's ``json.dumps`` writes ``NaN`` and ``Infinity`` for non-finite floats, which is not JSON:
strict parsers (``jq``, JavaScript, ``json.loads(..., parse_constant=...)``) reject the whole
document. An undefined figure is ``null`` instead; the code that computes a figure should say
why it is undefined, and :func:`strict_json` is the safety net that keeps any stray non-finite
float from reaching the output.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every non-finite float (also inside dicts, lists, tuples, numpy arrays) replaced
    by None, numpy scalars and arrays as Python numbers and lists, paths as strings."""
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else str(k): finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    np = sys.modules.get("numpy")  # numpy values exist only if numpy is loaded: no import for `bot status`
    if np is not None:
        if isinstance(obj, np.floating):
            x = float(obj)
            return x if math.isfinite(x) else None
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.bool_):
            return bool(obj)
        if isinstance(obj, np.ndarray):
            return finite_or_none(obj.tolist())
    return obj


def strict_json(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`finite_or_none` ``(obj)`` with ``allow_nan=False``: never ``NaN`` or
    ``Infinity``. Other objects (Decimal, datetime) are written as their ``str``; ``kwargs`` go to
    ``json.dumps`` (``indent``, ``sort_keys``)."""
    kwargs.setdefault("default", str)
    return json.dumps(finite_or_none(obj), allow_nan=False, **kwargs)
