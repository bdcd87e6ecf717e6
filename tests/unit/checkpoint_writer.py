"""The child process of test_checkpoint.py's kill -9 test.

``python checkpoint_writer.py PATH`` saves the contents A, then B, then A... to PATH until it
is killed, and prints ``ready`` once the first save is complete. A and B hold different
values in every array, so that a file mixing them is told apart from either.
"""

from __future__ import annotations

import sys

import numpy as np

from numpy_optim.checkpoint import save

SIZE = 1_500_000  # elements per array: 18 MB per content


def contents(which: str) -> dict:
    """Content ``"A"`` or ``"B"``."""
    value = {"A": 1.0, "B": 2.0}[which]
    return {
        "which": which,
        "weights": np.full(SIZE, value),
        "moments": (np.arange(SIZE, dtype=np.float32) * np.float32(value), [which, value]),
        "step": int(value),
    }


if __name__ == "__main__":
    path = sys.argv[1]
    both = contents("A"), contents("B")
    save(both[0], path)
    print("ready", flush=True)
    count = 1
    while True:
        save(both[count % 2], path)
        count += 1
