"""The bandwidth floor: in-place streams over float32 arrays, shaped like the optimizers.

An optimizer step on a large parameter is memory-bound: it reads the parameter, the
gradient and the state buffers once and writes the parameter and the buffers back. The
kernels here do the same traffic with almost no arithmetic (a multiply-add per array), so
their time is what moving those bytes costs on this machine:

====== ============================================ =========================
shape  arrays                                       like
====== ============================================ =========================
R2W1   read p, g; write p (``p += s * g``)          SGD
R3W2   read p, g, m; write p, m                     SGD with momentum
R4W3   read p, g, m, v; write p, m, v               Adam, AdamW
R5W4   read p, g, m, v, w; write p, m, v, w         Adam with amsgrad
====== ============================================ =========================

Bytes moved per call: ``(reads + writes) * 4 * n``. The writes go back to arrays just
read, so there is no write-allocate traffic to count.

The kernels are numba loops (``nogil``, ``error_model="numpy"``, no fastmath) run on
``threads`` Python threads (default: numpy_optim's ``settings.threads``), each on one
contiguous part of every array, the way numpy_optim's numba backend splits a large
parameter. A :class:`Stream` cycles through ``sets`` independent sets of arrays, one per
call: with 8 sets of 10M elements, an R4W3 call touches 160 MB, and the set it touches was
last used 1.1 GB of traffic earlier, so it has left even a CPU cache of several hundred
MB (a VM's L3 may be the host's: shared, and large; the reference machine reports 260 MB). With
``sets=1`` the same arrays are reused every call, as a benchmark round of one optimizer
reuses its parameter.

>>> with Stream("R2W1", n=1000, sets=2, threads=2) as stream:
...     for _ in range(3):  # set 0, set 1, set 0
...         stream()
>>> stream.bytes
12000
>>> float(stream.sets[0][0][-1]), float(stream.sets[1][0][-1])  # p = 1 + 0.5 * g per call
(2.0, 1.5)
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

_JIT = {"nogil": True, "error_model": "numpy", "cache": False}


@numba.njit(**_JIT)
def _r2w1(p, g, s):
    for i in range(p.size):
        p[i] += s * g[i]


@numba.njit(**_JIT)
def _r3w2(p, g, m, s):
    for i in range(p.size):
        b = s * m[i] + g[i]
        m[i] = b
        p[i] += s * b


@numba.njit(**_JIT)
def _r4w3(p, g, m, v, s):
    for i in range(p.size):
        a = s * m[i] + g[i]
        b = s * v[i] + g[i]
        m[i] = a
        v[i] = b
        p[i] += s * (a + b)


@numba.njit(**_JIT)
def _r5w4(p, g, m, v, w, s):
    for i in range(p.size):
        a = s * m[i] + g[i]
        b = s * v[i] + g[i]
        c = max(w[i], b)
        m[i] = a
        v[i] = b
        w[i] = c
        p[i] += s * (a + c)


#: shape -> (kernel, arrays read, arrays written)
KERNELS = {"R2W1": (_r2w1, 2, 1), "R3W2": (_r3w2, 3, 2), "R4W3": (_r4w3, 4, 3), "R5W4": (_r5w4, 5, 4)}


class Stream:
    """One in-place stream kernel over ``sets`` sets of float32 arrays of ``n`` elements,
    split over ``threads`` threads; calling it runs the kernel once on the next set."""

    def __init__(self, shape: str, n: int = 10_000_000, sets: int = 8, threads: int | None = None) -> None:
        if threads is None:
            from numpy_optim import _blocks

            threads = _blocks.settings.threads
        self.kernel, reads, writes = KERNELS[shape]
        self.shape, self.n, self.threads = shape, n, max(1, threads)
        self.bytes = (reads + writes) * 4 * n
        self.scale = np.float32(0.5)
        self.sets = [[np.ones(n, np.float32) for _ in range(reads)] for _ in range(sets)]
        cuts = [n * k // self.threads // 64 * 64 for k in range(self.threads)] + [n]
        self._parts = [
            [[a[lo:hi] for a in arrays] for lo, hi in zip(cuts[:-1], cuts[1:])] for arrays in self.sets
        ]
        self._next = itertools.cycle(self._parts)
        self._pool = ThreadPoolExecutor(self.threads - 1) if self.threads > 1 else None
        self.kernel(*[np.ones(64, np.float32) for _ in range(reads)], self.scale)  # compile, untimed

    def __call__(self) -> None:
        first, *others = next(self._next)
        futures = [self._pool.submit(self.kernel, *part, self.scale) for part in others] if self._pool else []
        self.kernel(*first, self.scale)
        for future in futures:
            future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
