"""Your own data as a task like the others: arrays, a list of sequences, or windows of a series.

`prepare` reads what a user hands over (shapes decide many-to-one or per-step, integer targets mean
classes, float targets values), `Arrays` is the TaskLike the trainer runs: random training batches,
the validation split as its test set, metrics in the data's own units. `Model.fit` (training/fit.py)
and the `series` and `sequences` tasks of the command line (tasks/files.py) both build one.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..data import Scaler, pad_sequences
from ..ops import log_softmax
from ..predict import regression_metrics
from .base import Batch, mean_xent, read_only


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


def split(data: Data, validation) -> tuple[Data, Data | None]:
    """(train, validation): validation a fraction in (0, 1) holds out the LAST part of the data in the
    order given, as Keras's validation_split does (for windows of a series: the latest ones, never a
    shuffled choice); 0 or None holds nothing out. A (x, y[, lengths]) tuple is prepared like the data."""
    if validation is None or (isinstance(validation, (int, float)) and not isinstance(validation, bool)
                              and validation == 0):
        return data, None
    if isinstance(validation, (tuple, list)):
        if not 2 <= len(validation) <= 3:
            raise ValueError(f"validation: expected a fraction or (x, y[, lengths]), got a tuple of {len(validation)}")
        many_to_one = data.mask is None
        return data, prepare(*validation, many_to_one=many_to_one or None)
    if isinstance(validation, bool) or not isinstance(validation, (int, float)) or not 0 < validation < 1:
        raise ValueError(f"validation: expected a fraction in [0, 1) or (x, y[, lengths]), got {validation!r}")
    n = len(data.x)
    n_val = int(np.ceil(validation * n))
    if n_val >= n:
        raise ValueError(f"validation: holding out {validation:.0%} of {n} sequences leaves none to train on")
    return data.take(np.arange(n - n_val)), data.take(np.arange(n - n_val, n))


class Arrays:
    """A TaskLike over prepared user data: random batches of the training split, the validation split as
    the test set the trainer evaluates, metrics in the data's own units. "solved" is always 0.0 (your data
    has no paper's criterion): training runs its steps, or stops on `patience`.

    standardize: fit a Scaler on the training split (vector inputs; and targets for regression) and
    hand the model standardised arrays; the scaler is saved with the model and applied by predict.
    """
    stateful = False
    paper: dict = {}

    def __init__(self, train: Data, validation: Data | None = None, *, name: str = "arrays", standardize=True,
                 dtype=np.float32, num_classes: int | None = None, vocab_size: int | None = None):
        self.name, self.dtype = name, np.dtype(dtype)
        classes = train.y.dtype.kind == "i"
        self.loss, self.target_type = ("xent", "classes") if classes else ("mse", "values")
        self.many_to_one = train.mask is None
        tokens = train.x.ndim == 2
        parts = [train] + ([validation] if validation is not None else [])
        if tokens:
            self.vocab_size = vocab_size or int(max(p.x.max() for p in parts)) + 1
        self.input_size = 1 if tokens else train.x.shape[-1]
        self.output_size = (num_classes or int(max(p.y.max() for p in parts)) + 1) if classes else train.y.shape[-1]
        for p in parts[1:]:
            if p.x.ndim != train.x.ndim or (not tokens and p.x.shape[-1] != self.input_size):
                raise ValueError(f"validation: x has shape {p.x.shape}, the training x {train.x.shape}")
            width = 1 if train.y.ndim == 2 and train.mask is None else 2     # (B, O): O; (B, T, O): O
            if (p.y.ndim != train.y.ndim or p.y.dtype.kind != train.y.dtype.kind
                    or p.y.shape[width:] != train.y.shape[width:] or (p.mask is None) != (train.mask is None)):
                raise ValueError(f"validation: y is {p.y.dtype.name}{p.y.shape}, the training y {train.y.dtype.name}"
                                 f"{train.y.shape}")
        for p, which in zip(parts, ("training", "validation")):
            if classes and p.y.max() >= self.output_size:
                raise ValueError(f"y: the {which} data has class id {int(p.y.max())}, the model has "
                                 f"{self.output_size} classes (ids 0 to {self.output_size - 1})")
            if tokens and p.x.max() >= self.vocab_size:
                raise ValueError(f"x: the {which} data has token id {int(p.x.max())}, the vocabulary has "
                                 f"{self.vocab_size} (ids 0 to {self.vocab_size - 1})")
        self.scaler = None
        if standardize and not tokens:
            valid = None if train.lengths is None else np.arange(train.x.shape[1])[None, :] < train.lengths[:, None]
            self.scaler = Scaler.fit(train.x, None if classes else train.y, valid, train.mask)
        self.train, self.validation = self._scaled(train), None if validation is None else self._scaled(validation)
        self._test = read_only(self.validation or self.train)

    def _scaled(self, d: Data) -> Batch:
        x, y = d.x, d.y
        if self.scaler is not None:
            x, y = self.scaler.x(x), self.scaler.y(y)
        x = x if x.dtype.kind == "i" else x.astype(self.dtype)
        y = y if y.dtype.kind == "i" else y.astype(self.dtype)
        return Batch(x, y, d.mask, d.lengths)

    def options(self) -> dict:
        return {}

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        """batch_size training sequences drawn at random without replacement (all of them if fewer)."""
        n = len(self.train.x)
        idx = np.sort(rng.choice(n, size=min(batch_size, n), replace=False))
        t = self.train
        return Batch(t.x[idx], t.y[idx], None if t.mask is None else t.mask[idx],
                     None if t.lengths is None else t.lengths[idx])

    def test_set(self) -> Batch:
        """The validation split (or, with none held out, the training split itself)."""
        return self._test

    def evaluate(self, out: np.ndarray, batch: Batch) -> dict[str, float]:
        """Accuracy for classes; mse, mae and r2 in the data's own units for values; "solved" 0.0."""
        out = out.astype(np.float64)
        if self.target_type == "classes":
            right = out.argmax(-1) == batch.y
            acc = right.mean() if batch.mask is None else right[batch.mask].mean()
            return {"accuracy": float(acc), "xent": mean_xent(log_softmax(out), batch.y, batch.mask), "solved": 0.0}
        y = batch.y.astype(np.float64)
        if self.scaler is not None:
            out, y = self.scaler.y_inverse(out), self.scaler.y_inverse(y)
        return {**regression_metrics(out, y, batch.mask), "solved": 0.0}

