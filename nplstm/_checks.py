"""Input checks shared by the layers: each failure names what was expected and what came."""
from __future__ import annotations

import numpy as np


def check_int(name: str, value, minimum: int = 1, maximum: int | None = None) -> int:
    """value as an int if it is one (not a bool) in [minimum, maximum], else ValueError naming both."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: expected an int <= {maximum:,}, got {value!r}")
    return int(value)


def check_dtype(dtype) -> np.dtype:
    """np.dtype(dtype) if it is float32 or float64 (the dtypes a layer computes in), else ValueError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype: expected float32 or float64, got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype: expected float32 or float64, got {dt.name}")
    return dt


def all_finite(a: np.ndarray) -> bool:
    """True if no entry of a is NaN or Inf. A finite sum proves it (NaN and ±Inf survive a sum) at
    the cost of one read; only when the sum is not finite (or finite values overflowed it) are the
    entries tested one by one."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(a)):
            return True
    return bool(np.isfinite(a).all())


def check_array(name: str, a, shape: tuple, dtype=None, finite: bool = False, when: str = "") -> np.ndarray:
    """Return `a` if it is an ndarray of exactly `shape` and `dtype` (and, with finite, no NaN or Inf).

    In `shape`, None matches any size and a leading ... any number of leading axes.
    Nothing is broadcast and nothing is cast: a mismatch raises ValueError. `when` prefixes the
    message's detail, e.g. "changed between forward() and backward(): ".
    """
    name = f"{name}: {when}".rstrip(": ") if when else name
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
    if finite and not all_finite(a):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name}: contains NaN or Inf (first at index {tuple(int(i) for i in bad)}: "
                         f"{a[tuple(bad)]}, {int((~np.isfinite(a)).sum())} of {a.size} entries); "
                         f"np.argwhere(~np.isfinite(a)) lists them all")
    return a


def check_params(params: dict, shapes: dict, dtype, *, finite: bool = True, when: str = "", layer: str = "layer"):
    """A shell's parameters: exactly the keys of `shapes`, each of its shape and dtype (and finite)."""
    for name, shape in shapes.items():
        if name not in params:
            raise ValueError(f"params: {when}missing {name!r} of shape {shape}")
        check_array(f"params[{name!r}]", params[name], shape, dtype, finite=finite, when=when)
    extra = sorted(set(params) - set(shapes))
    if extra:
        raise ValueError(f"params: {when}unexpected key {extra[0]!r}; this {layer} has {', '.join(shapes)}")


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


def check_dropout(masks, num_layers: int, shape: tuple, dtype) -> list | None:
    """masks: None, or num_layers - 1 arrays of `shape` (B, T, D·H) and dtype, finite, for the inputs of
    layers 1..L-1 (dropout between stacked layers) -> the list, or None."""
    if masks is None:
        return None
    if not isinstance(masks, (list, tuple)) or len(masks) != num_layers - 1:
        got = f"{len(masks)} of them" if isinstance(masks, (list, tuple)) else type(masks).__name__
        raise ValueError(f"dropout: expected {num_layers - 1} mask(s) (one per layer above the first), got {got}")
    return [check_array(f"dropout[{k}]", m, shape, dtype, finite=True) for k, m in enumerate(masks)]
