"""Input checks shared by the layers: each failure names what was expected and what came."""
from __future__ import annotations

import numpy as np


def check_array(name: str, a, shape: tuple, dtype=None, finite: bool = False) -> np.ndarray:
    """Return `a` if it is an ndarray of exactly `shape` and `dtype`.

    In `shape`, None matches any size and a leading ... any number of leading axes.
    Nothing is broadcast and nothing is cast: a mismatch raises ValueError.
    """
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array of shape {_fmt(shape)}, got {type(a).__name__}")
    full = shape
    if shape and shape[0] is Ellipsis:
        tail = tuple(shape[1:])
        full = (None,) * (a.ndim - len(tail)) + tail if a.ndim >= len(tail) else None
    if full is None or a.ndim != len(full) or any(s is not None and s != n for s, n in zip(full, a.shape)):
        raise ValueError(f"{name}: expected shape {_fmt(shape)}, got {a.shape}")
    if dtype is not None and a.dtype != dtype:
        raise ValueError(f"{name}: expected dtype {np.dtype(dtype).name}, got {a.dtype.name}; "
                         f"convert with .astype(np.{np.dtype(dtype).name}) or build the layer with dtype=np.{a.dtype.name}")
    if finite and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name}: contains NaN or Inf (first at index {tuple(int(i) for i in bad)}: "
                         f"{a[tuple(bad)]}); clean the data before training")
    return a


def check_lengths(lengths, B: int, T: int) -> np.ndarray | None:
    """lengths: None or B integers in [1, T] -> int64 array (B,)."""
    if lengths is None:
        return None
    lengths = np.asarray(lengths)
    if lengths.shape != (B,) or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"lengths: expected {B} integers (one per sequence), got shape {lengths.shape} "
                         f"of dtype {lengths.dtype.name}")
    if lengths.min() < 1 or lengths.max() > T:
        bad = int(np.flatnonzero((lengths < 1) | (lengths > T))[0])
        raise ValueError(f"lengths: each must be in [1, T={T}], got lengths[{bad}] = {int(lengths[bad])}")
    return lengths.astype(np.int64)


def _fmt(shape: tuple) -> str:
    return "(" + ", ".join("..." if s is Ellipsis else "*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
