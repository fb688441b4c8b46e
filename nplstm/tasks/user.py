"""Your own data as a task like the others: arrays, a list of sequences, or windows of a series.

nplstm.data.prepare reads what a user hands over (shapes decide many-to-one or per-step, integer targets
mean classes, float targets values); `split` holds out the validation part; `Arrays` is the TaskLike the trainer runs: random training batches,
the validation split as its test set, metrics in the data's own units. `Model.fit` (training/fit.py)
and the `series` and `sequences` tasks of the command line (tasks/files.py) both build one.
"""
from __future__ import annotations

import numpy as np

from ..data import Data, Scaler, prepare
from ..ops import log_softmax
from ..predict import regression_metrics
from .base import Batch, mean_xent, read_only

__all__ = ["Arrays", "Data", "prepare", "split"]


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

