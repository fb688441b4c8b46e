"""Your own data as the layers take it: windows of a series, padded batches, a chronological split,
standardisation fitted on the training part only.

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
