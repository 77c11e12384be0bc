"""``flat[offsets[i]:offsets[i+1]]`` for every i as a numba typed list: the per-query arrays
ranx's metric kernels take, built in one compiled call (see :func:`harness.scoring._ranx_lists`).

A module of its own so numba can cache the compiled function on disk (``cache=True`` needs a
module-level function): a new process (a ``--jobs`` worker, a Ray task) then loads it in
~0.25 s instead of compiling it in ~0.6 s. Imported lazily: numba is slow to import.
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numba.typed import List


@njit(cache=True)
def _split(flat, offsets):
    out = List()
    for i in range(len(offsets) - 1):
        out.append(flat[offsets[i]:offsets[i + 1]].copy())
    return out


def split_rows(flat: np.ndarray, offsets: np.ndarray):
    return _split(np.ascontiguousarray(flat, dtype=np.float64),
                  np.ascontiguousarray(offsets, dtype=np.int64))
