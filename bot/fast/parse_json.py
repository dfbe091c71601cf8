"""Byte-level JSON pieces of the compiled recording parser (:mod:`bot.fast.parse_binance`).

Each function reads one JSON construct at ``buf[i]`` and returns the index after it, or -1 when
the bytes are anything but the plain form it accepts (no whitespace, no escapes, no exponents):
the parser then leaves the whole recording to the reference reader. Numbers are kept exact:
integers as int64, decimal strings as (mantissa, decimals).

Every function is inlined into the scan at numba's IR level (``inline="always"``): called, each
took a dozen array arguments apart and put them back together per line, and the scan ran about
a quarter slower. The price is compile time (the scan compiles in ~30 s instead of ~10 s the
first time, then loads from numba's cache); ``read_object`` has one call site for that reason.
"""

from __future__ import annotations

import numpy as np
from numba import njit

BOOK_TICKER = np.frombuffer(b"bookTicker", dtype=np.uint8)
LAST_UPDATE_ID = np.frombuffer(b"lastUpdateId", dtype=np.uint8)


@njit(cache=True, nogil=True, inline="always")
def word_at(buf, i, word):
    """``buf[i:i + len(word)] == word`` (the caller checked the length fits)."""
    for q in range(word.shape[0]):
        if buf[i + q] != word[q]:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def skip_string(buf, i, end):
    """``buf[i] == '"'``: index after the closing quote, -1 on an escape, control or non-ASCII byte."""
    i += 1
    while i < end:
        c = buf[i]
        if c == 34:
            return i + 1
        if c == 92 or c < 32 or c >= 128:
            return -1
        i += 1
    return -1


@njit(cache=True, nogil=True, inline="always")
def _digits(buf, i, end, m):
    """The digits from ``i`` appended to ``m``: (index after them, m). One unsigned compare and a
    multiply-add per digit: these loops are most of the scan (prices, sizes, ids, timestamps)."""
    while i < end:
        d = np.int64(buf[i]) - 48
        if d < 0 or d > 9:
            break
        m = m * 10 + d
        i += 1
    return i, m


@njit(cache=True, nogil=True, inline="always")
def read_int(buf, i, end, out):
    """A JSON integer at ``i``: ``out[0]`` = value; index after it, -1 if not a plain int.

    18 digits cannot overflow int64, so they are read unchecked; only a 19th is checked."""
    neg = False
    if i < end and buf[i] == 45:
        neg = True
        i += 1
    start = i
    i, v = _digits(buf, i, min(end, start + 18), 0)
    if i == start + 18 and i < end and 48 <= buf[i] <= 57:
        d = np.int64(buf[i]) - 48
        if v > (9223372036854775807 - d) // 10:
            return -1  # beyond int64
        v = v * 10 + d
        i += 1
        if i < end and 48 <= buf[i] <= 57:
            return -1
    n = i - start
    if n == 0 or (n > 1 and buf[start] == 48):
        return -1
    if i < end and (buf[i] == 46 or buf[i] == 101 or buf[i] == 69):  # a float is not an id
        return -1
    out[0] = -v if neg else v
    return i


@njit(cache=True, nogil=True, inline="always")
def _decimal(buf, i, end, out):
    """A quoted plain decimal ``"123.4500"`` at ``i``: ``out[0]`` mantissa, ``out[1]`` decimals;
    index after the closing quote, -1 when it is anything else (sign, exponent, more than 18
    digits, so that the mantissa cannot overflow before it is checked)."""
    if i >= end or buf[i] != 34:
        return -1
    start = i + 1
    i, m = _digits(buf, start, end, 0)
    n_int = i - start
    dec = 0
    if i < end and buf[i] == 46:
        i, m = _digits(buf, i + 1, end, m)
        dec = i - start - n_int - 1
        if dec == 0:
            return -1
    if n_int == 0 or i >= end or buf[i] != 34 or n_int + dec > 18 or dec > 22 or m >= 9007199254740992:
        return -1
    out[0] = m
    out[1] = dec
    return i + 1


@njit(cache=True, nogil=True, inline="always")
def _levels(buf, i, end, mant, pdec, size, nlev, pow10, tmp):
    """``[["p","q"],...]`` at ``i`` appended to the level arrays from ``nlev[0]``; index after ``]`` or -1.

    Sizes become doubles here; prices stay (mantissa, decimals). Every price must be > 0 (the
    reader rejects the message otherwise, so we fall back)."""
    if i >= end or buf[i] != 91:
        return -1
    i += 1
    if i < end and buf[i] == 93:
        return i + 1
    while True:
        if i >= end or buf[i] != 91:
            return -1
        i = _decimal(buf, i + 1, end, tmp)
        if i < 0 or tmp[0] <= 0:
            return -1
        pm = tmp[0]
        pd = tmp[1]
        if i >= end or buf[i] != 44:
            return -1
        i = _decimal(buf, i + 1, end, tmp)
        if i < 0 or i >= end or buf[i] != 93:
            return -1
        k = nlev[0]
        if k >= mant.shape[0]:
            return -1
        mant[k] = pm
        pdec[k] = pd
        size[k] = tmp[0] / pow10[tmp[1]]
        nlev[0] = k + 1
        i += 1
        if i < end and buf[i] == 44:
            i += 1
            continue
        if i < end and buf[i] == 93:
            return i + 1
        return -1


@njit(cache=True, nogil=True, inline="always")
def _skip_value(buf, i, end, tmp):
    """Skip a scalar JSON value (string, int, true/false/null); -1 for anything else."""
    if i >= end:
        return -1
    c = buf[i]
    if c == 34:
        return skip_string(buf, i, end)
    if c == 116 and i + 4 <= end and buf[i + 1] == 114 and buf[i + 2] == 117 and buf[i + 3] == 101:
        return i + 4
    if c == 102 and i + 5 <= end and buf[i + 1] == 97 and buf[i + 2] == 108 and buf[i + 3] == 115 and buf[i + 4] == 101:
        return i + 5
    if c == 110 and i + 4 <= end and buf[i + 1] == 117 and buf[i + 2] == 108 and buf[i + 3] == 108:
        return i + 4
    return read_int(buf, i, end, tmp)


# field slots of one message (keys the reader reads; a repeated one is a fallback)
F_E, F_U, F_u, F_pu, F_t, F_m, F_b, F_a, F_B, F_A, F_p, F_q, F_lid, F_bids, F_asks = range(15)
N_FIELDS = 15


@njit(cache=True, nogil=True, inline="always")
def _key(buf, ks, ke):
    """The field slot of the key ``buf[ks:ke]`` (-1: a key the reader does not read)."""
    n = ke - ks
    c = buf[ks]
    if n == 1:
        if c == 69:
            return F_E
        if c == 85:
            return F_U
        if c == 117:
            return F_u
        if c == 116:
            return F_t
        if c == 109:
            return F_m
        if c == 98:
            return F_b
        if c == 97:
            return F_a
        if c == 66:
            return F_B
        if c == 65:
            return F_A
        if c == 112:
            return F_p
        if c == 113:
            return F_q
        return -1
    if n == 2 and c == 112 and buf[ks + 1] == 117:
        return F_pu
    if n == 12 and word_at(buf, ks, LAST_UPDATE_ID):
        return F_lid
    if n == 4 and c == 98 and buf[ks + 1] == 105 and buf[ks + 2] == 100 and buf[ks + 3] == 115:
        return F_bids
    if n == 4 and c == 97 and buf[ks + 1] == 115 and buf[ks + 2] == 107 and buf[ks + 3] == 115:
        return F_asks
    if n == 6 and c == 115 and buf[ks + 1] == 116:  # "stream" inside an object we parse as data: not canonical
        return -2
    return -1


@njit(cache=True, nogil=True, inline="always")
def read_object(buf, i, end, ints, seen, lev_lo, lev_n, mant, pdec, size, nlev, pow10, tmp):
    """Parse one flat object at ``buf[i] == '{'``: ints of the int slots, the level lists' spans,
    decimal strings of b/B/a/A/p/q as levels (a scalar price/size is one (mantissa, decimals) level
    stored in the price arrays); returns the index after ``}`` or -1."""
    if i >= end or buf[i] != 123:
        return -1
    i += 1
    for f in range(N_FIELDS):
        seen[f] = 0
    if i < end and buf[i] == 125:
        return i + 1
    while True:
        if i >= end or buf[i] != 34:
            return -1
        ks = i + 1
        ke = skip_string(buf, i, end)
        if ke < 0:
            return -1
        slot = _key(buf, ks, ke - 1)
        i = ke
        if slot == -2 or i >= end or buf[i] != 58:
            return -1
        i += 1
        if slot == -1:
            i = _skip_value(buf, i, end, tmp)
        else:
            if seen[slot]:
                return -1  # a repeated key: json keeps the last one; not worth mirroring
            seen[slot] = 1
            if slot == F_m:
                if i + 4 <= end and buf[i] == 116 and buf[i + 1] == 114 and buf[i + 2] == 117 and buf[i + 3] == 101:
                    ints[slot] = 1
                    i += 4
                elif i + 5 <= end and buf[i] == 102 and buf[i + 1] == 97 and buf[i + 2] == 108 and buf[i + 3] == 115 and buf[i + 4] == 101:
                    ints[slot] = 0
                    i += 5
                else:
                    return -1
            elif slot == F_E or slot == F_U or slot == F_u or slot == F_pu or slot == F_t or slot == F_lid:
                i = read_int(buf, i, end, tmp)
                if i >= 0:
                    ints[slot] = tmp[0]
            elif buf[i] == 91:  # b / a / bids / asks as level lists
                lev_lo[slot] = nlev[0]
                i = _levels(buf, i, end, mant, pdec, size, nlev, pow10, tmp)
                lev_n[slot] = nlev[0] - lev_lo[slot]
            else:  # a scalar price or size (bookTicker b/B/a/A, trade p/q)
                i = _decimal(buf, i, end, tmp)
                if i >= 0:
                    k = nlev[0]
                    if k >= mant.shape[0]:
                        return -1
                    mant[k] = tmp[0]
                    pdec[k] = tmp[1]
                    size[k] = tmp[0] / pow10[tmp[1]]
                    lev_lo[slot] = k
                    lev_n[slot] = -1  # a scalar, not a list
                    nlev[0] = k + 1
        if i < 0 or i >= end:
            return -1
        if buf[i] == 44:
            i += 1
            continue
        if buf[i] == 125:
            return i + 1
        return -1
