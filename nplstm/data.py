"""Your own data as the layers take it: windows of a series, padded batches, what the shapes of (x, y)
mean (prepare), a chronological split, standardisation fitted on the training part only.

Everything here is NumPy and pure: arrays in, new arrays out. `Model.fit` (nplstm.training.fit)
uses these; they are public so that a loop written by hand can use them too.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._checks import check_int


def windows(series, window: int, horizon: int = 1, stride: int = 1):
    """Sliding windows of a series -> (x, y): the `window` values before each target, and the value
    `horizon` steps after the window's last one.

    series: (N,) or (N, F) numbers in time order. Returns x (M, window, F) and y (M, F), float64,
    M = (N - window - horizon) // stride + 1: x[m] = series[s : s + window], y[m] = series[s + window
    + horizon - 1] with s = m·stride.
    """
    s = as_series(series)
    window, horizon, stride = (check_int("window", window), check_int("horizon", horizon),
                               check_int("stride", stride))
    N = len(s)
    if N < window + horizon:
        raise ValueError(f"series: expected at least window + horizon = {window + horizon} values, got {N}")
    starts = np.arange(0, N - window - horizon + 1, stride)
    x = np.stack([s[t:t + window] for t in starts])          # (M, window, F)
    y = s[starts + window + horizon - 1]                     # (M, F)
    return x, y


def as_series(series) -> np.ndarray:
    """series as a finite float64 array (N, F): a 1-D series becomes one feature."""
    try:
        s = np.asarray(series, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"series: expected numbers, got {type(series).__name__} that is not numeric") from None
    if s.ndim == 1:
        s = s[:, None]
    if s.ndim != 2 or s.shape[1] == 0:
        raise ValueError(f"series: expected shape (N,) or (N, F), got {s.shape}")
    bad = np.argwhere(~np.isfinite(s))
    if len(bad):
        raise ValueError(f"series: contains NaN or Inf (first at row {int(bad[0][0])}, "
                         f"{int((~np.isfinite(s)).any(1).sum())} rows in all)")
    return s


def pad_sequences(seqs, fill: float = 0.0, dtype=None):
    """A list of sequences of different lengths -> (x (B, T, ...), lengths (B,) int64), right-padded.

    Each sequence is (L_b,) or (L_b, F) with the same F; T = max L_b. fill: the padding value.
    """
    if isinstance(seqs, np.ndarray) or not isinstance(seqs, (list, tuple)):
        raise ValueError(f"sequences: expected a list of arrays, got {type(seqs).__name__}")
    if not seqs:
        raise ValueError("sequences: expected at least one sequence, got an empty list")
    arrays = []
    for b, s in enumerate(seqs):
        try:
            arrays.append(np.asarray(s) if dtype is None else np.asarray(s, dtype))
        except (TypeError, ValueError):
            raise ValueError(f"sequences: sequence {b} is not a rectangular array of numbers (L,) or (L, F) "
                             "(its steps differ in size, or hold something else)") from None
    tail = arrays[0].shape[1:]
    for b, a in enumerate(arrays):
        if a.ndim == 0 or a.shape[1:] != tail:
            raise ValueError(f"sequences: expected every sequence of shape (L, {', '.join(map(str, tail))}) "
                             f"like the first, sequence {b} has shape {a.shape}".replace(", )", ")"))
        if len(a) == 0:
            raise ValueError(f"sequences: sequence {b} is empty; every sequence needs at least one step")
    lengths = np.array([len(a) for a in arrays], np.int64)
    out = np.full((len(arrays), int(lengths.max())) + tail, fill, np.result_type(*arrays))
    for b, a in enumerate(arrays):
        out[b, :len(a)] = a
    return out, lengths


class Data(NamedTuple):
    """User data in the layout the layers take (see prepare)."""
    x: np.ndarray                    # (B, T, I) float64, or (B, T) int64 token ids
    y: np.ndarray                    # (B,) / (B, T) int64 classes, or (B, O) / (B, T, O) float64 values
    lengths: np.ndarray | None       # (B,) int64, or None when every sequence fills T
    mask: np.ndarray | None          # (B, T) bool of the counted per-step targets, None for many-to-one

    def take(self, idx) -> "Data":
        return Data(self.x[idx], self.y[idx], None if self.lengths is None else self.lengths[idx],
                    None if self.mask is None else self.mask[idx])


def prepare(x, y, lengths=None, mask=None, many_to_one: bool | None = None) -> Data:
    """x: (B, T, I) numbers, (B, T) numbers of one feature, (B, T) integer token ids, or a list of B
    sequences ((L_b,) or (L_b, I); padded here, lengths inferred). y: per sequence (B,) or (B, O), or per
    step (B, T) or (B, T, O) (or a list of per-step sequences); integers are class ids, floats values.
    A float y of shape (B, T) is per step when T is x's length, unless many_to_one=True says otherwise.
    mask: (B, T) bool, the per-step targets that count (and only those within each length count)."""
    if isinstance(x, (list, tuple)):
        if lengths is not None:
            raise ValueError("lengths: a list of sequences carries its own lengths; pass lengths only with an array")
        x, lengths = pad_sequences(list(x))
    x = np.asarray(x) if not isinstance(x, np.ndarray) else x
    if x.dtype.kind not in "iuf" or x.ndim not in (2, 3):
        raise ValueError(f"x: expected numbers (B, T, I), (B, T), or token ids (B, T), got {x.dtype.name}{x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x: expected at least one sequence of at least one step, got shape {x.shape}")
    B, T = x.shape[:2]
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            bad = np.argwhere(~np.isfinite(x))[0]
            raise ValueError(f"x: contains NaN or Inf (first at index {tuple(int(i) for i in bad)})")
        x = x.astype(np.float64) if x.ndim == 3 else x.astype(np.float64)[..., None]
    elif x.ndim == 3:
        x = x.astype(np.float64)
    else:
        x = x.astype(np.int64)
        if x.min() < 0:
            raise ValueError(f"x: token ids must be >= 0, got {int(x.min())}")
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.shape != (B,) or lengths.dtype.kind not in "iu" or lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"lengths: expected {B} integers in [1, {T}], got {lengths.dtype.name}{lengths.shape}")
        lengths = lengths.astype(np.int64)
    y = _targets(y, B, T, many_to_one, lengths)
    per_step = y.ndim == 3 or (y.ndim == 2 and y.dtype.kind == "i")
    counted = None
    if per_step:
        counted = np.ones((B, T), bool) if lengths is None else np.arange(T)[None, :] < lengths[:, None]
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (B, T) or mask.dtype != bool:
                raise ValueError(f"mask: expected a bool array of shape {(B, T)}, got {mask.dtype.name}{mask.shape}")
            counted &= mask
        if not counted.any():
            raise ValueError("mask: no step is counted (every target is masked out or past its sequence's length)")
    elif mask is not None:
        raise ValueError("mask: the targets are one per sequence (many-to-one); a per-step mask does not apply")
    return Data(x, y, lengths, counted)


def _targets(y, B: int, T: int, many_to_one, lengths=None):
    if isinstance(y, (list, tuple)) and y and np.ndim(y[0]) >= 1 and not many_to_one:
        y, y_lengths = pad_sequences(list(y))        # per-step targets of ragged sequences
        x_lengths = np.full(B, T) if lengths is None else lengths
        ragged = y_lengths.min() != y_lengths.max()       # equal lengths: an array's rows, (B, O) or (B, T)
        if ragged and len(y_lengths) == B and not np.array_equal(y_lengths, x_lengths):
            b = int(np.flatnonzero(y_lengths != x_lengths)[0])
            raise ValueError(f"y: a list of per-step targets needs one target per step of each sequence; "
                             f"sequence {b} has {int(x_lengths[b])} steps and {int(y_lengths[b])} targets")
    y = np.asarray(y)
    if y.dtype.kind not in "iuf" or y.ndim == 0 or y.shape[0] != B:
        raise ValueError(f"y: expected {B} targets (one per sequence, or one per step), got {y.dtype.name}{y.shape}")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        bad = np.argwhere(~np.isfinite(y))[0]
        raise ValueError(f"y: contains NaN or Inf (first at index {tuple(int(i) for i in bad)})")
    if y.dtype.kind in "iu":
        if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != T) or y.min() < 0:
            raise ValueError(f"y: class ids must be >= 0 and of shape ({B},) or ({B}, {T}), got "
                             f"{y.dtype.name}{y.shape} with minimum {int(y.min())}")
        if y.ndim == 2 and many_to_one:
            raise ValueError("y: integer targets (B, T) are per step; many_to_one=True does not apply")
        return y.astype(np.int64)
    y = y.astype(np.float64)
    if y.ndim == 1:
        return y[:, None]                                   # (B, 1): one value per sequence
    if y.ndim == 2:
        return y[..., None] if (y.shape[1] == T and not many_to_one) else y   # (B, T, 1) per step, or (B, O)
    if y.ndim == 3 and y.shape[1] == T and not many_to_one:
        return y
    raise ValueError(f"y: expected values (B,), (B, O), (B, T) or (B, T, O) with T = {T}, got shape {y.shape}")


def chronological_split(n: int, test_fraction: float):
    """Indices (train, test) of n samples in time order: the last ceil(test_fraction·n) are held out,
    never a shuffled choice (a shuffled split of overlapping windows leaks the future into training)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    n_test = int(np.ceil(test_fraction * n))
    if n_test >= n:
        raise ValueError(f"cannot hold out {test_fraction:.0%} of {n} samples and keep any to train on")
    return np.arange(n - n_test), np.arange(n - n_test, n)


class Scaler(NamedTuple):
    """Standardisation fitted on the training split: the model sees (x - x_mean) / x_std and, for
    regression, learns (y - y_mean) / y_std; predict undoes the second. y_mean, y_std: None for classes."""
    x_mean: np.ndarray        # (I,)
    x_std: np.ndarray         # (I,)
    y_mean: np.ndarray | None = None   # (O,)
    y_std: np.ndarray | None = None    # (O,)

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray | None = None, mask_x=None, mask_y=None) -> "Scaler":
        """Means and standard deviations over every valid step. x: (B, T, I); y: (B, O) or (B, T, O) or
        None; mask_x: (B, T) bool of the valid input steps; mask_y: (B, T) bool of the counted targets."""
        xs = x[mask_x] if mask_x is not None else x.reshape(-1, x.shape[-1])
        x_mean, x_std = _moments(xs)
        if y is None:
            return cls(x_mean, x_std)
        ys = y[mask_y] if mask_y is not None and y.ndim == 3 else y.reshape(-1, y.shape[-1])
        return cls(x_mean, x_std, *_moments(ys))

    def x(self, x: np.ndarray) -> np.ndarray:
        """(x - x_mean) / x_std on the last axis."""
        return (x - self.x_mean) / self.x_std

    def y(self, y: np.ndarray) -> np.ndarray:
        """(y - y_mean) / y_std: the target the model learns."""
        return y if self.y_mean is None else (y - self.y_mean) / self.y_std

    def y_inverse(self, out: np.ndarray) -> np.ndarray:
        """out · y_std + y_mean: the model's output in the data's own units."""
        return out if self.y_mean is None else out * self.y_std + self.y_mean

    def arrays(self) -> dict[str, np.ndarray]:
        """name -> array, for a checkpoint ("scaler/x_mean", ...)."""
        return {f"scaler/{k}": np.asarray(v) for k, v in self._asdict().items() if v is not None}

    @classmethod
    def from_arrays(cls, arrays: dict, where: str = "checkpoint") -> "Scaler | None":
        """The Scaler stored by arrays(), or None if there is none."""
        if "scaler/x_mean" not in arrays:
            return None
        got = {k: None if (v := arrays.get(f"scaler/{k}")) is None else np.asarray(v) for k in cls._fields}
        for k, v in got.items():
            if v is not None and (v.dtype.kind not in "fiu" or v.ndim != 1 or len(v) == 0 or not np.isfinite(v).all()
                                  or (k.endswith("std") and (v <= 0).any())):
                raise ValueError(f"{where}: scaler/{k} must be a finite 1-D array of numbers (std > 0), got "
                                 f"{v.dtype.name}{v.shape}")
        if (got["x_std"] is None or got["x_std"].shape != got["x_mean"].shape
                or (got["y_mean"] is None) != (got["y_std"] is None)
                or (got["y_mean"] is not None and got["y_mean"].shape != got["y_std"].shape)):
            raise ValueError(f"{where}: the scaler's arrays do not match (x_mean with x_std, y_mean with y_std: "
                             "both present, of one shape)")
        got = {k: None if v is None else v.astype(np.float64) for k, v in got.items()}
        return cls(**got)


def _moments(a: np.ndarray):
    """Mean and standard deviation of each column of a (N, F); a constant column keeps std 1 (nothing to scale)."""
    mean, std = a.mean(axis=0), a.std(axis=0)
    return mean, np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
