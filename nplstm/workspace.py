"""Scratch arrays for the fast engines (lstm.py, gru.py): a workspace kept between calls, and where a
forward writes its hidden states."""
from __future__ import annotations

import numpy as np


class Workspace:
    """Scratch arrays kept between calls, by name. A fresh multi-megabyte array costs page faults
    on first touch, which shows at large sizes; reusing one does not. Whatever a call takes from
    a workspace is overwritten by the next call that uses the same workspace."""

    def __init__(self):
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple, dtype, zero: bool = False) -> np.ndarray:
        a = self._arrays.get(name)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = self._arrays[name] = np.empty(shape, dtype)
        if zero:
            a.fill(0)
        return a


def fresh(name: str, shape: tuple, dtype, zero: bool = False) -> np.ndarray:
    """A new array each call: Workspace.get's signature, for callers that keep no workspace."""
    return (np.zeros if zero else np.empty)(shape, dtype)


def hidden_states(alloc, h0, T: int, dtype, ragged: bool, keep: bool, out=None, h=None):
    """Where a forward writes h_t: (h, h0, hs) with hs[t] = h_{t+1}, (T, B, H), and h0 the state read at t = 0.

    Training keeps h (T+1, B, H) for the backward, h[0] = h_0 (the caller's `h`, or from the workspace `alloc`);
    inference keeps no h: it reads h_0 from the caller and writes h_1..h_T into `out` (or a fresh array), so h
    is None.
    """
    B, H = h0.shape
    if not keep:
        return None, h0, out if out is not None else fresh("h", (T, B, H), dtype, zero=ragged)
    if h is None:
        h = alloc("h", (T + 1, B, H), dtype, zero=ragged)
    h[0] = h0
    return h, h[0], h[1:]
