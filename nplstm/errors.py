"""The two errors of arithmetic gone out of range, and the words their reports are written in.

NonFiniteError: a training quantity became NaN or Inf, detection off (one line: what, at which update).
AnomalyError: detect_anomaly's report of the first NaN or Inf: what, where, what fed it, likely causes.
Both are ArithmeticErrors, not ValueErrors: the inputs were well-formed (malformed input is a
ValueError, refused by the shells), so `except ValueError` does not swallow a diverging run.
"""
from __future__ import annotations

import numpy as np

GATES = ("input gate", "forget gate", "cell input g", "output gate")  # the gate order i, f, g, o


class NonFiniteError(ArithmeticError):
    """A training quantity (the model's output, the loss, the gradient norm, an update) became NaN or
    Inf with anomaly detection off: the message names which, and the trainer adds at which update.
    Rerun under detect_anomaly() to learn where it was born. An ArithmeticError, like AnomalyError."""


class AnomalyError(ArithmeticError):
    """The first NaN or Inf of a computation: what, where, the numbers that fed it and likely causes.

    An ArithmeticError, like FloatingPointError and OverflowError: the inputs were well-formed and
    the arithmetic went out of range, so code that catches ValueError for malformed input does not
    swallow a diverging run. str() is the full multi-line report.
    """

    def __init__(self, quantity: str, value, phase: str, where: dict | None = None,
                 inputs=(), causes=()):
        super().__init__(quantity)
        self.quantity, self.value, self.phase = quantity, value, phase
        self.where = dict(where or {})        # "layer": 0, "time step t": 3, ... (caller's indices)
        self.inputs = list(inputs)            # (label, text) lines: what went into the quantity
        self.causes = list(causes)            # likely causes, most specific first
        self.training: list[str] = []         # the trainer's context (add_training_context)

    def add_training_context(self, *, update: int, lr: float, optimizer: str, clip: float | None,
                             grad_norms: list, params: dict, evaluating: bool = False) -> None:
        """Add the run's state: update number, lr, recent gradient norms (before clipping), weight sizes."""
        when = f"evaluating the test set after update {update}" if evaluating else f"update {update}"
        self.where = {"training": when, **self.where}
        norms = [float(n) for n in grad_norms]
        clipping = "no clipping (clip=None)" if clip is None else f"gradient norm clipped to {clip:g}"
        self.training = [f"learning rate {lr:g} ({optimizer}), {clipping}"]
        if norms:
            self.training.append(f"gradient norm before clipping, last {len(norms)} updates (oldest first): "
                                 + ", ".join(_num(n) for n in norms))
        biggest = max(params, key=lambda k: np.nan_to_num(_maxabs(params[k]), nan=np.inf))
        self.training.append(f"largest weight now: max |{biggest}| = {_num(_maxabs(params[biggest]))}")
        self.causes += _training_causes(lr, optimizer, clip, norms, biggest, _maxabs(params[biggest]))
        if not self.causes:
            self.causes.append("nothing above stands out: rerun with a smaller learning rate and clipping, "
                               "and compare")

    def __str__(self) -> str:
        lines = [f"AnomalyError: {self.quantity} is {_num(self.value)}",
                 "  where: " + ", ".join([self.phase] + [_at(k, v) for k, v in self.where.items()])]
        if self.inputs:
            lines.append("  what went into it:")
            width = max(len(label) for label, _ in self.inputs)
            lines += [f"    {label:<{width}}  {text}" for label, text in self.inputs]
        if self.training:
            lines.append("  training:")
            lines += [f"    {line}" for line in self.training]
        if self.causes:
            lines.append("  likely causes:")
            lines += [f"    - {cause}" for cause in self.causes]
        return "\n".join(lines)


def _training_causes(lr, optimizer, clip, norms, biggest, biggest_value) -> list[str]:
    causes = []
    finite = [n for n in norms if np.isfinite(n) and n > 0]
    if len(finite) >= 2 and finite[-1] >= 1e3 * finite[0]:
        causes.append(f"exploding gradients: the gradient norm grew from {_num(finite[0])} to {_num(finite[-1])} "
                      f"in {len(finite) - 1} updates ({np.log10(finite[-1] / finite[0]):.0f} orders of magnitude)")
    if clip is None:
        causes.append("gradients are not clipped (clip=None): clip the global norm, e.g. TrainConfig(clip=1.0) "
                      "or --clip 1, so that one bad batch cannot throw the weights far")
    last = min(finite[-1], clip or np.inf) if finite else 0.0
    if optimizer == "SGD" and lr * last > 10:
        causes.append(f"learning rate {lr:g} too large for these gradients: the last SGD update moved the "
                      f"weights by lr x |g| = {_num(lr * last)} (weights are of order 1); try 1e-2 to 1e-1")
    elif optimizer != "SGD" and lr > 0.1:
        causes.append(f"learning rate {lr:g} too large for {optimizer}, which moves every weight by about lr per "
                      f"update; try 1e-3 to 1e-2")
    if not np.isfinite(biggest_value) or biggest_value > 1e4:
        causes.append(f"the weights are already huge or non-finite (max |{biggest}| = {_num(biggest_value)}): "
                      f"earlier updates blew them up")
    return causes


# --- small helpers ------------------------------------------------------------------------------

def _at(key: str, value) -> str:
    """'time step t=3' for a key ending in a symbol, 'layer 0' otherwise."""
    return f"{key}={value}" if len(key.rsplit(" ", 1)[-1]) == 1 else f"{key} {value}"


def _num(v) -> str:
    return f"{float(v):.3g}"


def _maxabs(a) -> float:
    """max |a| with NaN counted as NaN; 0 for an empty array."""
    a = np.asarray(a)
    return float(np.abs(a).max()) if a.size else 0.0


def _mag(a) -> str:
    """'max |a|' as text, saying how many entries are NaN or Inf."""
    a = np.asarray(a, np.float64)
    if a.size == 0:
        return "(empty)"
    bad = ~np.isfinite(a)
    text = _num(np.abs(a[~bad]).max()) if (~bad).any() else "-"
    if bad.any():
        kinds = "/".join(s for s, m in (("nan", np.isnan(a)), ("inf", np.isinf(a))) if m.any())
        text += f"  ({int(bad.sum())} of {a.size} entries are {kinds})"
    return text


def _first_bad(a) -> tuple:
    return tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])


def _nonfinite_note(name: str, a) -> str | None:
    """'l0.R is already non-finite: 1 of 256 entries, the first nan at [2, 5]', or None if finite."""
    if np.isfinite(a).all():
        return None
    idx = _first_bad(a)
    return (f"{name} is already non-finite: {int((~np.isfinite(a)).sum())} of {a.size} entries, the first "
            f"{_num(a[idx])} at {list(idx)}; an earlier update, or an assignment, put it there")


def _where(axes, idx) -> dict:
    return {axis: i for axis, i in zip(axes, idx) if axis}


def _check(quantity, a, phase, axes=(), explain=None, where=None) -> None:
    """Raise AnomalyError naming the first non-finite entry of a, if any.

    explain: a function returning (inputs, causes), called only then: a passing check costs one scan.
    """
    if np.isfinite(a).all():
        return
    idx = _first_bad(a)
    inputs, causes = explain() if explain else ((), ())
    raise AnomalyError(quantity, a[idx], phase, {**(where or {}), **_where(axes, idx)}, inputs, causes)
