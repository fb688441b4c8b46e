"""What every task shares: the Batch it hands out, the Task interface, and small helpers."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol, runtime_checkable

import numpy as np

from .. import _checks


@dataclass(frozen=True, eq=False)
class Batch:
    """One batch of sequences, batch-first.

    x: (B, T, I) float32, right-padded with zeros past each sequence's length.
    y: float32 (B, O) or (B, T, O) for "mse"; int64 class ids (B,) or (B, T) for "xent".
    mask: (B, T) bool, the steps whose targets count (per-step tasks), None for many-to-one.
    lengths: (B,) int64, or None when every sequence fills all T steps.
    extra: task-specific per-step data (e.g. Reber's possible next symbols), or None.
    """
    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray | None = None
    lengths: np.ndarray | None = None
    extra: dict | None = None


@runtime_checkable
class TaskLike(Protocol):
    """What the trainer needs of a task, and all it needs: the one statement of the task contract.

    batch(rng, B) draws every random number from rng (so a run is reproduced by its seed);
    evaluate(out, batch) returns the task's metrics including "solved" (1.0 or 0.0), with out laid
    out like batch.y. Optional: `stateful = True` (consecutive batches continue the same B streams;
    the trainer carries (h_n, c_n) across batches with no gradient across the boundary, truncated
    BPTT) with get_state() -> dict / set_state(dict) (its stream position, JSON-serializable, kept
    in checkpoints); options() -> dict (rebuilds it with make_task); `paper` (published numbers).
    """
    name: str
    input_size: int                     # I
    output_size: int                    # O
    loss: str                           # "mse" | "xent"
    many_to_one: bool                   # y (B, O) if True, else (B, T, O)

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch: ...

    def test_set(self) -> Batch: ...

    def evaluate(self, out: np.ndarray, batch: Batch) -> dict[str, float]: ...


class Task:
    """A benchmark: seeded training batches, a fixed test set, and its paper's success criterion.
    A TaskLike, with the test set built once and cached read-only.

    Subclasses set `name`, `input_size`, `output_size`, `loss` ("mse" or "xent"),
    `many_to_one` and `paper` (the published numbers, with their source), and implement
    `batch`, `_make_test_set` and `evaluate`. A stream task sets `stateful = True`: its
    consecutive batches continue the same sequences, and it has `get_state` / `set_state`.
    """
    name: str
    input_size: int
    output_size: int
    loss: str
    many_to_one: bool
    paper: dict
    stateful: bool = False

    def options(self) -> dict:
        """The keyword options this task was built with: make_task(self.name, **options) rebuilds it."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        """A fresh random training batch of `batch_size` sequences drawn with `rng`."""
        raise NotImplementedError

    def test_set(self) -> Batch:
        """The held-out set, built once from the task's seed; its arrays are read-only."""
        cached = self.__dict__.get("_test_cache")
        if cached is None:
            cached = self.__dict__["_test_cache"] = read_only(self._make_test_set())
        return cached

    def _make_test_set(self) -> Batch:
        raise NotImplementedError

    def evaluate(self, out: np.ndarray, batch: Batch) -> dict[str, float]:
        """out: the model's outputs for batch.x, laid out like batch.y ((B, O) or (B, T, O)).

        Returns the paper's error measure and "solved": 1.0 if its criterion holds on this batch.
        """
        raise NotImplementedError


# The three long-lag experiments of Hochreiter & Schmidhuber (1997) that report "# wrong out of
# 2560" stopped training once the 2000 most recent sequences were all processed correctly.
STOP_WINDOW = 2000


def solved_by_stop_rule(n_wrong: int, n: int) -> float:
    """1.0 if fewer than one sequence in STOP_WINDOW is wrong (so 1 of 2560 passes), else 0.0."""
    return float(n_wrong * STOP_WINDOW < n)


def one_hot(ids: np.ndarray, n: int) -> np.ndarray:
    """ids: int array (...) with values in [-1, n) -> float32 (..., n); -1 (padding) gives zeros."""
    out = np.zeros(ids.shape + (n,), np.float32)
    valid = ids >= 0
    out[valid, ids[valid]] = 1.0
    return out


def pad(seqs: list[np.ndarray], fill=-1) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad 1-D (or (L, k)) arrays to a common length -> (B, T, ...) array, lengths (B,) int64."""
    lengths = np.array([len(s) for s in seqs], np.int64)
    out = np.full((len(seqs), int(lengths.max())) + seqs[0].shape[1:], fill, seqs[0].dtype)
    for b, s in enumerate(seqs):
        out[b, :len(s)] = s
    return out, lengths


def read_only(batch: Batch) -> Batch:
    """Mark the batch's arrays (extra's included) read-only, so a cached test set cannot be altered."""
    arrays = [batch.x, batch.y, batch.mask, batch.lengths, *(batch.extra or {}).values()]
    for a in arrays:
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
    return batch


MAX_SIZE = 10 ** 7  # a length or count beyond this could not fit in memory as float32 sequences


def check_int(task: str, name: str, value, minimum: int) -> int:
    """A task option: an int in [minimum, MAX_SIZE], else ValueError naming the task and the option."""
    return _checks.check_int(f"{task}: {name}", value, minimum, MAX_SIZE)


def check_choice(task: str, name: str, value, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{task}: {name} must be one of {choices}, got {value!r}")


def check_out(task: str, out, shape: tuple) -> np.ndarray:
    """out as float64 if it is an array of exactly `shape`, else ValueError."""
    if not isinstance(out, np.ndarray) or out.shape != shape:
        got = out.shape if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(f"{task}.evaluate: out must have shape {shape} (the layout of batch.y, "
                         f"one value per output unit), got {got}")
    return out.astype(np.float64)


def finite(out: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Where every output unit is finite (no NaN, no ±inf): an output that is not counts as wrong.

    out: (B, O) -> (B,) per sequence; (B, T, O) -> (B, T) per step, or with mask (B, T) bool
    -> (B,) per sequence, over the steps where mask is True (the ones evaluated).
    """
    ok = np.isfinite(out).all(-1)
    return ok if mask is None else (ok | ~mask).all(-1)


def check_batch_size(task: str, batch_size) -> int:
    return check_int(task, "batch_size", batch_size, 1)


def mean_xent(logp: np.ndarray, y: np.ndarray, mask: np.ndarray | None) -> float:
    """Mean of -log p(target) over unmasked steps. logp: (..., C) log-probabilities; y: (...) ints."""
    nll = -np.take_along_axis(logp, np.where(y >= 0, y, 0)[..., None], axis=-1)[..., 0]
    return float(nll.mean() if mask is None else nll[mask].mean())


def top_k_correct(out: np.ndarray, possible: np.ndarray) -> np.ndarray:
    """At each step, are the k most active outputs exactly the k possible ones?

    out: (..., C) outputs; possible: (..., C) bool with k >= 1 True entries -> (...) bool.
    Equivalent to: every possible output is strictly above every impossible one.
    """
    lowest_possible = np.where(possible, out, np.inf).min(axis=-1)
    highest_other = np.where(possible, -np.inf, out).max(axis=-1)
    return lowest_possible > highest_other
