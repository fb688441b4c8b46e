"""Long-time-lag experiments of Hochreiter & Schmidhuber (1997), "Long Short-Term Memory",
Neural Computation 9(8): the adding problem (Exp. 4), temporal order (Exp. 6) and noise-free
sequences with long time lags (Exp. 2a).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ops import log_softmax, softmax
from .base import (Batch, Task, check_batch_size, check_choice, check_int, check_out, finite, mean_xent,
                   one_hot, solved_by_stop_rule)

# Table 7 of the 1997 paper: T -> (training sequences until the stopping criterion, test errors).
_ADDING_1997 = {100: (74_000, "1 of 2560"), 500: (209_000, "0 of 2560"), 1000: (853_000, "1 of 2560")}


@dataclass(eq=False, kw_only=True)
class Adding(Task):
    """The adding problem: output the sum of the two marked values of a sequence.

    x: (B, T', 2) float32, channels (value, marker); y: (B, 1) float32; many-to-one, "mse".

    form="1997" (Hochreiter & Schmidhuber 1997, section 5.4, Exp. 4): each sequence has a length
    drawn from [T, T + T//10]; values are uniform in [-1, 1]. The first mark is on one of the
    first 10 steps, the second on one of the first T//2 - 1 steps not yet marked. The marker is
    1.0 on marked steps, -1.0 on the first and last steps when they are not marked, 0 elsewhere.
    The paper sets X1 = 0 "in the rare case where the first pair of the sequence got marked": we
    zero the value channel of step 0 whenever it is marked, so the target stays a function of the
    input, 0.5 + (X1 + X2) / 4. A sequence is correct if |error| < 0.04 at its end.

    form="modern" (Arjovsky, Shah & Bengio 2016, section 4.2, after Le, Jaitly & Hinton 2015):
    fixed length T, values uniform in [0, 1], one mark in each half, target X1 + X2. Predicting
    the mean, 1, gives MSE Var(X1 + X2) = 1/6 ("baseline_mse"). There is no published per-sequence
    criterion; we use the 1997 one in the modern target's units: 0.04 on (X1 + X2)/4 is 0.16.

    solved: fewer than 1 wrong sequence per 2000 (the paper stopped training once the 2000 most
    recent sequences were correct, then found 1 of 2560 test sequences wrong at T = 100).
    """
    T: int = 100              # (minimum) sequence length
    form: str = "1997"        # "1997" or "modern"
    seed: int = 0             # seeds the test set
    test_size: int = 2560     # the paper's test set size

    name = "adding"
    input_size = 2
    output_size = 1
    loss = "mse"
    many_to_one = True

    def __post_init__(self):
        check_choice(self.name, "form", self.form, ("1997", "modern"))
        # 1997: the first mark is on one of the first 10 steps, so sequences need at least 10
        check_int(self.name, "T", self.T, 10 if self.form == "1997" else 2)
        check_int(self.name, "test_size", self.test_size, 1)

    @property
    def tolerance(self) -> float:
        return 0.04 if self.form == "1997" else 0.16

    @property
    def paper(self) -> dict:
        if self.form == "modern":
            return {"source": "Arjovsky, Shah & Bengio 2016, section 4.2", "baseline_mse": 1 / 6}
        info = {"source": "Hochreiter & Schmidhuber 1997, section 5.4 (Exp. 4), Table 7", "T": self.T,
                "criterion": "|error| < 0.04 at the sequence end", "test_set": 2560}
        if self.T in _ADDING_1997:
            info["sequences"], info["wrong"] = _ADDING_1997[self.T]
        else:
            info["note"] = "the paper reports T = 100, 500 and 1000 only"
        return info

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        B, T = check_batch_size(self.name, batch_size), self.T
        rows = np.arange(B)
        if self.form == "modern":
            values = rng.random((B, T))
            first, second = rng.integers(0, T // 2, B), rng.integers(T // 2, T, B)
            marker = np.zeros((B, T))
            marker[rows, first] = marker[rows, second] = 1.0
            y = values[rows, first] + values[rows, second]
            return Batch(np.stack([values, marker], -1).astype(np.float32), y[:, None].astype(np.float32))

        lengths = rng.integers(T, T + T // 10 + 1, B)
        steps = np.arange(lengths.max())
        inside = steps < lengths[:, None]                         # (B, T')
        values = np.where(inside, rng.uniform(-1.0, 1.0, inside.shape), 0.0)
        first = rng.integers(0, 10, B)
        k = rng.integers(0, T // 2 - 1, B)                       # the k-th still-unmarked step
        second = k + (k >= first)
        marker = np.zeros(inside.shape)
        marker[:, 0] = -1.0
        marker[rows, lengths - 1] = -1.0
        marker[rows, first] = marker[rows, second] = 1.0
        values[marker[:, 0] == 1.0, 0] = 0.0                     # X1 = 0 when step 0 is marked
        y = 0.5 + (values[rows, first] + values[rows, second]) / 4.0
        x = np.stack([values, marker], -1).astype(np.float32)
        return Batch(x, y[:, None].astype(np.float32), lengths=lengths.astype(np.int64))

    def _make_test_set(self) -> Batch:
        return self.batch(np.random.default_rng([self.seed, 1]), self.test_size)

    def evaluate(self, out: np.ndarray, batch: Batch) -> dict[str, float]:
        """out: (B, 1). Metrics: mse, wrong (count), frac_wrong, solved (+ baseline_mse, modern).
        A non-finite output is wrong, and no batch with one is solved."""
        out = check_out(self.name, out, batch.y.shape)
        ok = finite(out)                                         # (B,)
        err = out[:, 0] - batch.y[:, 0]
        wrong = int(((np.abs(err) >= self.tolerance) | ~ok).sum())   # abs(nan) >= tol is False
        metrics = {"mse": float(np.mean(err ** 2)), "wrong": float(wrong), "frac_wrong": wrong / len(err),
                   "solved": solved_by_stop_rule(wrong, len(err)) if ok.all() else 0.0}
        if self.form == "modern":
            metrics["baseline_mse"] = 1 / 6
        return metrics


# Table 9 of the 1997 paper (Exp. 6), as quoted here: training sequences until success, test errors.
_TEMPORAL_ORDER = {"6a": (31_390, "0 of 2560"), "6b": (571_100, "1 of 2560")}
SYMBOLS = "abcdXYBE"   # distractors a-d, relevant X and Y, end (trigger) B, start E
_X, _B, _E = SYMBOLS.index("X"), SYMBOLS.index("B"), SYMBOLS.index("E")


@dataclass(eq=False, kw_only=True)
class TemporalOrder(Task):
    """Temporal order: classify a sequence by the order of its widely separated X and Y symbols.

    x: (B, T', 8) float32 one-hot over "abcdXYBE"; y: (B,) int64 class; many-to-one, "xent".

    Hochreiter & Schmidhuber 1997, section 5.6, Exp. 6 (also NIPS 1996, Exp. 2): a sequence of
    100-110 symbols starts with E, ends with B (the trigger) and is otherwise random a-d, except
    for X or Y at t1 in [10, 20] and t2 in [50, 60] (6a, 4 classes XX, XY, YX, YY = Q, R, S, U),
    or at t1 in [10, 20], t2 in [33, 43], t3 in [66, 76] (6b, 8 classes XXX ... YYY = Q ... C).
    Steps are counted from 0 at the start symbol. Class = the X/Y pattern read as bits (X = 0).

    The paper's outputs were sigmoid units and a sequence was correct if "the final error of all
    output units is below 0.3". We train a softmax and call a sequence correct if its argmax is
    the class; "frac_err_below_0.3" reports the paper's test applied to the softmax probabilities.
    solved: fewer than 1 wrong sequence per 2000 (the paper's stopping rule; see Adding).
    """
    experiment: str = "6a"    # "6a" (two relevant symbols) or "6b" (three): the paper's Exp. 6a or 6b
    seed: int = 0
    test_size: int = 2560

    name = "temporal_order"
    max_steps = 110           # the longest sequence (100-110 symbols), for the trainer's memory estimate
    input_size = len(SYMBOLS)
    loss = "xent"
    many_to_one = True

    def __post_init__(self):
        check_choice(self.name, "experiment", self.experiment, tuple(_TEMPORAL_ORDER))
        check_int(self.name, "test_size", self.test_size, 1)

    @property
    def windows(self) -> list[tuple[int, int]]:
        """Inclusive step ranges of the relevant symbols."""
        return [(10, 20), (50, 60)] if self.experiment == "6a" else [(10, 20), (33, 43), (66, 76)]

    @property
    def output_size(self) -> int:
        return 2 ** len(self.windows)

    @property
    def paper(self) -> dict:
        sequences, wrong = _TEMPORAL_ORDER[self.experiment]
        return {"source": f"Hochreiter & Schmidhuber 1997, section 5.6 (Exp. {self.experiment})",
                "sequences": sequences, "wrong": wrong,
                "criterion": "final absolute error of every (sigmoid) output unit below 0.3"}

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        B = check_batch_size(self.name, batch_size)
        rows = np.arange(B)
        lengths = rng.integers(100, 111, B)
        ids = rng.integers(0, 4, (B, lengths.max()))             # distractors a-d
        ids[:, 0] = _E
        ids[rows, lengths - 1] = _B
        ids[np.arange(ids.shape[1]) >= lengths[:, None]] = -1    # padding
        bits = rng.integers(0, 2, (B, len(self.windows)))         # 0: X, 1: Y
        for j, (lo, hi) in enumerate(self.windows):
            ids[rows, rng.integers(lo, hi + 1, B)] = _X + bits[:, j]
        label = bits @ (2 ** np.arange(len(self.windows))[::-1])  # first symbol is the high bit
        return Batch(one_hot(ids, self.input_size), label.astype(np.int64), lengths=lengths.astype(np.int64))

    def _make_test_set(self) -> Batch:
        return self.batch(np.random.default_rng([self.seed, 1]), self.test_size)

    def evaluate(self, out: np.ndarray, batch: Batch) -> dict[str, float]:
        """out: (B, classes) logits. Metrics: accuracy, wrong, frac_wrong, frac_err_below_0.3, loss, solved.
        A sequence with a non-finite logit is wrong, and no batch with one is solved."""
        out = check_out(self.name, out, batch.y.shape + (self.output_size,))
        ok = finite(out)                                         # (B,)
        wrong = int(((out.argmax(-1) != batch.y) | ~ok).sum())   # argmax may land on a NaN at the class
        target = np.eye(self.output_size)[batch.y]
        within = (np.abs(softmax(out) - target) < 0.3).all(-1) & ok
        return {"accuracy": 1 - wrong / len(out), "wrong": float(wrong), "frac_wrong": wrong / len(out),
                "frac_err_below_0.3": float(within.mean()), "loss": mean_xent(log_softmax(out), batch.y, None),
                "solved": solved_by_stop_rule(wrong, len(out)) if ok.all() else 0.0}


@dataclass(eq=False, kw_only=True)
class NoiseFreeLag(Task):
    """Noise-free sequences with long time lags: predict the next symbol; the last one needs memory.

    x: (B, p+1, p+1) float32 one-hot; y: (B, p+1) int64 next-symbol ids; mask: all steps but the
    last (which has no successor); per-step "xent".

    Hochreiter & Schmidhuber 1997, section 5.2, Exp. 2a: the alphabet has p+1 symbols a_1 ...
    a_{p-1}, x, y (ids 0 ... p-2, then p-1 for x, p for y). Each sequence is (y, a_1, ..., a_{p-1}, y)
    or (x, a_1, ..., a_{p-1}, x) with probability 0.5; only the final symbol depends on the first,
    p steps earlier. The paper's criterion for a successful run: on 10,000 successive random
    sequences, the absolute error of every output unit stays below 0.25. Both sequences are
    deterministic once their first symbol is seen, so the test set is just the two of them and
    solved = every output unit's softmax error < 0.25 at every predicted step of every sequence.
    """
    p: int = 100              # the time lag; sequences have p + 1 symbols
    seed: int = 0             # unused: the test set holds both possible sequences

    name = "noise_free_lag"
    loss = "xent"
    many_to_one = False

    def __post_init__(self):
        check_int(self.name, "p", self.p, 2)

    @property
    def input_size(self) -> int:
        return self.p + 1

    @property
    def output_size(self) -> int:
        return self.p + 1

    @property
    def paper(self) -> dict:
        info = {"source": "Hochreiter & Schmidhuber 1997, section 5.2 (Exp. 2a)", "p": self.p,
                "criterion": "absolute error of every output unit below 0.25 on 10,000 successive sequences"}
        if self.p == 100:
            info.update(sequences=5_040, successful_trials="100%")
        else:
            info["note"] = "the paper's LSTM figure is for p = 100"
        return info

    def sequences(self, first: np.ndarray) -> np.ndarray:
        """first: (B,) 0 for x, 1 for y -> ids (B, p+1): (c, a_1, ..., a_{p-1}, c)."""
        c = self.p - 1 + first
        middle = np.broadcast_to(np.arange(self.p - 1), (len(first), self.p - 1))
        return np.concatenate([c[:, None], middle, c[:, None]], axis=1)

    def _batch(self, first: np.ndarray) -> Batch:
        ids = self.sequences(first)
        y = np.concatenate([ids[:, 1:], np.zeros((len(ids), 1), ids.dtype)], axis=1)
        mask = np.ones(ids.shape, bool)
        mask[:, -1] = False
        return Batch(one_hot(ids, self.input_size), y.astype(np.int64), mask)

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        return self._batch(rng.integers(0, 2, check_batch_size(self.name, batch_size)))

    def _make_test_set(self) -> Batch:
        return self._batch(np.array([1, 0]))                     # the y sequence, then the x sequence

    def evaluate(self, out: np.ndarray, batch: Batch) -> dict[str, float]:
        """out: (B, p+1, p+1) logits. Metrics: max_abs_error, final_accuracy, accuracy, loss, solved.
        A step with a non-finite logit is wrong, with the worst error a probability can have, 1."""
        out = check_out(self.name, out, batch.y.shape + (self.output_size,))
        ok = finite(out)                                         # (B, T)
        errors = np.abs(softmax(out) - np.eye(self.output_size)[batch.y]).max(-1)   # (B, T)
        max_error = float(np.where(ok, errors, 1.0)[batch.mask].max())
        correct = (out.argmax(-1) == batch.y) & ok
        return {"max_abs_error": max_error, "final_accuracy": float(correct[:, -2].mean()),
                "accuracy": float(correct[batch.mask].mean()),
                "loss": mean_xent(log_softmax(out), batch.y, batch.mask),
                "solved": float(max_error < 0.25)}
