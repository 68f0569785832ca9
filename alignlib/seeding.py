"""Deterministic random streams.

Every random draw of the pipeline comes from a generator keyed by what it is for
(task, role, snr, n, seed), never by the position of a value in a grid or by the
job that happens to draw it. So a member re-created alone, or trained in another
batch, sees exactly the same numbers.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np


def _key_words(key) -> list[int]:
    """Turn one key (str, int or float) into 32-bit words, injectively per type."""
    if isinstance(key, str):
        return [1, zlib.crc32(key.encode("utf-8"))]
    if isinstance(key, (bool, np.bool_)):
        raise TypeError("booleans are not valid random-stream keys")
    if isinstance(key, (int, np.integer)):
        value = int(key)
        if value < 0:
            raise ValueError(f"negative integer key {value} is not allowed")
        return [2, value & 0xFFFFFFFF, value >> 32]
    if isinstance(key, (float, np.floating)):
        # The exact bits of the float: 10.0 and 10.000000001 are different streams.
        bits = struct.unpack("<Q", struct.pack("<d", float(key)))[0]
        return [3, bits & 0xFFFFFFFF, bits >> 32]
    raise TypeError(f"unsupported random-stream key {key!r} of type {type(key).__name__}")


def stream(base_seed: int, task: str, role: str, *keys) -> np.random.Generator:
    """A NumPy generator for one named draw, e.g. ``stream(0, "lin", "noise", 1.0, 50, 3)``."""
    words = [int(base_seed)]
    for key in (task, role, *keys):
        words.extend(_key_words(key))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))
