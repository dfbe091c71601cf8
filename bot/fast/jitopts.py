"""The numba compile options every fast-path kernel uses (:mod:`bot.fast.kernel`, :mod:`bot.fast.flow_kernel`).

No fastmath: results must equal CPython's bit for bit. error_model "numpy": float divisions are
not checked for zero (every division is guarded as in the readable code), saving a branch and an
exception path per division. _nrt=False: the kernels never allocate, and without numba's
reference counting the arrays passed between helpers cost nothing (with it, the atomic
incref/decref of ~15 arrays per call made the kernel 2 to 4 times slower). Inlining at numba-IR
level (``jit_inline``) is used for the per-event path only: inlining the level setters as well
made compilation 3 times longer and the code no faster.
"""

from __future__ import annotations

from numba import njit

OPTS = {"cache": True, "error_model": "numpy", "_nrt": False}
jit = njit(**OPTS)
jit_inline = njit(inline="always", **OPTS)
