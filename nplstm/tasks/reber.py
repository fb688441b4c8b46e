"""The embedded Reber grammar: next-symbol prediction on separate strings (Hochreiter &
Schmidhuber 1997, Exp. 1) and on one continual stream of them (Gers, Schmidhuber & Cummins 2000).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _checks
from ..ops import log_softmax
from .base import (Batch, Task, check_batch_size, check_int, check_out, finite, mean_xent, one_hot, pad,
                   top_k_correct)

MAX_STRINGS = 100_000   # Reber strings per set: they are drawn one at a time in Python

SYMBOLS = "BTPSXVE"

# The Reber grammar (Cleeremans, Servan-Schreiber & McClelland 1989; drawn in Hochreiter &
# Schmidhuber 1997, section 5.1): state -> ((symbol, next state), ...), branches equally likely.
_REBER = {0: (("B", 1),), 1: (("T", 2), ("P", 3)), 2: (("S", 2), ("X", 4)), 3: (("T", 3), ("V", 5)),
          4: (("X", 3), ("S", 6)), 5: (("P", 4), ("V", 6)), 6: (("E", 7),)}


def _embedded_automaton() -> dict:
    """The embedded grammar B T R T E | B P R P E (R a Reber string) as state -> ((symbol, next), ...).

    States: "start"; "branch" after the first B; (c, s) inside R in Reber state s, c being the
    branch symbol to repeat; "close" after that repeat; "end".
    """
    edges = {"start": (("B", "branch"),), "branch": (("T", ("T", 0)), ("P", ("P", 0))),
             "close": (("E", "end"),), "end": ()}
    for c in "TP":
        for s, out in _REBER.items():
            edges[(c, s)] = tuple((symbol, (c, nxt)) for symbol, nxt in out)
        edges[(c, 7)] = ((c, "close"),)
    return edges


EMBEDDED = _embedded_automaton()


def embedded_reber(rng: np.random.Generator) -> str:
    """One random embedded Reber string, e.g. "BTBTXSETE"."""
    state, symbols = "start", []
    while EMBEDDED[state]:
        options = EMBEDDED[state]
        symbol, state = options[rng.integers(len(options))]
        symbols.append(symbol)
    return "".join(symbols)


def next_symbol_sets(s: str) -> list[str]:
    """The symbols that may follow each prefix s[:t+1] of an embedded Reber string, in "BTPSXVE"
    order ("" after the end).

    Raises ValueError if s is not in the embedded Reber language.
    """
    state, sets = "start", []
    for t, symbol in enumerate(s):
        moves = dict(EMBEDDED[state])
        if symbol not in moves:
            raise ValueError(f"not an embedded Reber string: {s!r} has {symbol!r} at position {t}, "
                             f"expected one of {''.join(moves) or 'nothing (the string has ended)'}")
        state = moves[symbol]
        sets.append("".join(sorted((sym for sym, _ in EMBEDDED[state]), key=SYMBOLS.index)))
    if state != "end":
        raise ValueError(f"not an embedded Reber string: {s!r} stops before its final E")
    return sets


def possible_next(strings: list[str]) -> np.ndarray:
    """Multi-hot (B, T, 7) bool over "BTPSXVE": which symbols may follow each step; False past the end."""
    return pad([_encode(s, continual=False)[1] for s in strings], False)[0]


def _encode(s: str, continual: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One string -> ids (L,), possible next symbols (L, 7) bool, closing-symbol flags (L,) bool.

    The flag marks the step whose target is the repeated branch symbol (input: the inner E),
    the one prediction that needs the memory of step 1. In a continual stream the final E is
    followed by the next string's B.
    """
    sets = next_symbol_sets(s)
    if continual:
        sets[-1] = "B"
    possible = np.zeros((len(s), len(SYMBOLS)), bool)
    for t, successors in enumerate(sets):
        possible[t, [SYMBOLS.index(c) for c in successors]] = True
    closing = np.zeros(len(s), bool)
    closing[len(s) - 3] = True
    return np.array([SYMBOLS.index(c) for c in s], np.int64), possible, closing


def _evaluate(name: str, out: np.ndarray, batch: Batch) -> tuple[np.ndarray, dict[str, float]]:
    """Shared metrics -> per-step top-k correctness (B, T) (True at masked steps), metrics.
    A step with a non-finite logit is wrong."""
    out = check_out(name, out, batch.y.shape + (len(SYMBOLS),))
    if not batch.extra or "possible" not in batch.extra:
        raise ValueError(f"{name}.evaluate: batch.extra['possible'] is missing; evaluate batches made by this task")
    ok_out = finite(out)                                          # (B, T)
    ok = (top_k_correct(out, batch.extra["possible"]) & ok_out) | ~batch.mask
    closing = batch.extra["tp"]
    hits = ((out.argmax(-1) == batch.y) & ok_out)[closing]       # argmax may land on a NaN at the target
    return ok, {"step_accuracy": float(ok[batch.mask].mean()),
                "accuracy_tp": float(hits.mean()) if hits.size else float("nan"),
                "loss": mean_xent(log_softmax(out), batch.y, batch.mask)}


@dataclass(eq=False, kw_only=True)
class Reber(Task):
    """Embedded Reber grammar: predict the next symbol of each string.

    x: (B, T, 7) float32 one-hot over "BTPSXVE", right-padded; y: (B, T) int64 the actual next
    symbol; mask: (B, T) the steps that have a successor; lengths: (B,) int64;
    extra: {"possible": (B, T, 7) bool, the symbols the grammar allows next (1 or 2 of them),
    "tp": (B, T) bool, the step predicting the repeated T/P}.

    Hochreiter & Schmidhuber 1997, section 5.1, Exp. 1: fixed sets of 256 training and 256 test
    strings; `batch` samples from the training strings. Criterion: at every step of every string
    the most active outputs are those of the possible next symbols (top-k, k = how many there
    are), on both sets. So `test_set()` holds the 256 test strings followed by the 256 training
    strings (extra["is_test"] tells which), and solved = the criterion holds for every string of
    both. Other metrics: step_accuracy, wrong_test and wrong_train (strings with any wrong step),
    frac_wrong (test strings only), accuracy_tp (argmax at the repeated T/P), loss.
    """
    n_train: int = 256
    n_test: int = 256
    seed: int = 0             # seeds both string sets (as separate streams)

    name = "reber"
    input_size = len(SYMBOLS)
    output_size = len(SYMBOLS)
    loss = "xent"
    many_to_one = False

    def __post_init__(self):
        for name in ("n_train", "n_test"):     # strings are drawn one by one in Python: keep it to seconds
            _checks.check_int(f"{self.name}: {name}", getattr(self, name), 1, MAX_STRINGS)
        train_rng, test_rng = np.random.default_rng([self.seed, 1]), np.random.default_rng([self.seed, 2])
        self.train_strings = tuple(embedded_reber(train_rng) for _ in range(self.n_train))
        self.test_strings = tuple(embedded_reber(test_rng) for _ in range(self.n_test))
        self._train_encoded = [_encode(s, continual=False) for s in self.train_strings]

    @property
    def paper(self) -> dict:
        return {"source": "Hochreiter & Schmidhuber 1997, section 5.1 (Exp. 1), Table 1", "sequences": 8_440,
                "criterion": "at every step, the possible next symbols are the most active outputs, "
                             "on all 256 training and 256 test strings"}

    @staticmethod
    def _assemble(encoded: list) -> Batch:
        ids, lengths = pad([e[0] for e in encoded], -1)
        possible, _ = pad([e[1] for e in encoded], False)
        closing, _ = pad([e[2] for e in encoded], False)
        mask = np.arange(ids.shape[1]) < (lengths - 1)[:, None]
        y = np.zeros_like(ids)
        y[:, :-1] = np.where(mask[:, :-1], ids[:, 1:], 0)
        return Batch(one_hot(ids, len(SYMBOLS)), y, mask, lengths, {"possible": possible, "tp": closing})

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        pick = rng.integers(0, self.n_train, check_batch_size(self.name, batch_size))
        return self._assemble([self._train_encoded[i] for i in pick])

    def train_set(self) -> Batch:
        """All training strings, in order."""
        return self._assemble(self._train_encoded)

    def _make_test_set(self) -> Batch:
        """The test strings, then the training strings: the paper's criterion covers both."""
        both = self._assemble([_encode(s, continual=False) for s in self.test_strings] + self._train_encoded)
        is_test = np.arange(self.n_test + self.n_train) < self.n_test
        return Batch(both.x, both.y, both.mask, both.lengths, {**both.extra, "is_test": is_test})

    def evaluate(self, out: np.ndarray, batch: Batch) -> dict[str, float]:
        """out: (B, T, 7) logits. Metrics: step_accuracy, wrong_test, wrong_train, frac_wrong,
        accuracy_tp, loss, solved. A batch without extra["is_test"] counts as all test strings."""
        ok, metrics = _evaluate(self.name, out, batch)
        string_wrong = ~ok.all(1)
        is_test = (batch.extra or {}).get("is_test", np.ones(len(ok), bool))
        wrong_test, wrong_train = int(string_wrong[is_test].sum()), int(string_wrong[~is_test].sum())
        return {**metrics, "wrong_test": float(wrong_test), "wrong_train": float(wrong_train),
                "frac_wrong": wrong_test / max(1, int(is_test.sum())), "solved": float(not string_wrong.any())}


@dataclass(eq=False, kw_only=True)
class ContinualReber(Task):
    """Continual embedded Reber grammar: next-symbol prediction on an endless stream of strings.

    x: (B, T, 7) float32 one-hot; y: (B, T) int64 the next symbol; mask: (B, T) all True;
    extra: {"possible": (B, T, 7) bool, "tp": (B, T) bool as in Reber, "new_streams": bool}.

    Gers, Schmidhuber & Cummins 2000 ("Learning to Forget"): embedded Reber strings are
    concatenated without any reset or end marker beyond the grammar's own E, and the network
    must learn to reset itself; without forget gates LSTM fails, with them it succeeds.

    Streams continue across calls: `batch(rng, B)` returns the next T steps of the same B
    streams every time it is called with the same B (state is kept per batch size), drawing the
    strings it appends with `rng`; carry the LSTM state from one chunk to the next. The first
    call for a batch size starts new streams and sets extra["new_streams"] = True: start from a
    zero state then. `reset_streams()` forgets them; `get_state()` / `set_state()` save and
    restore them (JSON-serializable). The test set is one deterministic stream of `test_steps` steps.

    Metrics: accuracy_tp, the argmax accuracy at the steps that predict the repeated T/P (the
    ones that need memory); step_accuracy, the 1997 top-k criterion over all steps; loss.
    solved: accuracy_tp >= 0.95 (our criterion; the paper's own measure is not reproduced here).
    """
    T: int = 100              # steps per chunk
    test_steps: int = 10_000
    seed: int = 0

    name = "continual_reber"
    input_size = len(SYMBOLS)
    output_size = len(SYMBOLS)
    loss = "xent"
    many_to_one = False
    stateful = True
    paper = {"source": "Gers, Schmidhuber & Cummins 2000, Neural Computation 12(10)",
             "finding": "LSTM without forget gates fails on the continual embedded Reber stream; "
                        "with forget gates it solves it"}

    def __post_init__(self):
        check_int(self.name, "T", self.T, 1)
        _checks.check_int(f"{self.name}: test_steps", self.test_steps, 1, MAX_STRINGS * 10)
        self._streams: dict[int, list[list[np.ndarray]]] = {}

    def reset_streams(self, batch_size: int | None = None) -> None:
        """Forget the streams of one batch size (all of them if None); the next batch starts anew."""
        if batch_size is None:
            self._streams.clear()
        else:
            self._streams.pop(batch_size, None)

    def get_state(self) -> dict:
        """The streams' unread symbols, per batch size, as plain ints (JSON-serializable)."""
        bits = 1 << np.arange(len(SYMBOLS))
        return {"streams": {str(B): [[ids.tolist(), (possible @ bits).tolist(), closing.astype(int).tolist()]
                                     for ids, possible, closing in buffers]
                            for B, buffers in self._streams.items()}}

    def set_state(self, state: dict) -> None:
        """Restore streams saved by get_state(); the next batch continues them exactly."""
        bits = np.arange(len(SYMBOLS))
        self._streams = {int(B): [[np.array(ids, np.int64).reshape(-1),
                                   ((np.array(masks, np.int64).reshape(-1, 1) >> bits) & 1).astype(bool),
                                   np.array(closing, bool).reshape(-1)] for ids, masks, closing in buffers]
                         for B, buffers in state["streams"].items()}

    @staticmethod
    def _next_chunk(buffer: list[np.ndarray], rng: np.random.Generator, T: int):
        """The stream's next T steps: (ids, possible, tp) for the inputs, and the T targets."""
        while len(buffer[0]) < T + 1:                            # the last target is the next input
            new = _encode(embedded_reber(rng), continual=True)
            buffer[:] = [np.concatenate([old, part]) for old, part in zip(buffer, new)]
        chunk, targets = [a[:T] for a in buffer], buffer[0][1:T + 1]
        buffer[:] = [a[T:] for a in buffer]
        return chunk, targets

    @staticmethod
    def _empty() -> list[np.ndarray]:
        return [np.zeros(0, np.int64), np.zeros((0, len(SYMBOLS)), bool), np.zeros(0, bool)]

    def _batch(self, buffers, rng, T: int, new: bool) -> Batch:
        chunks, targets = zip(*(self._next_chunk(buffer, rng, T) for buffer in buffers))
        ids, possible, closing = (np.stack(a) for a in zip(*chunks))
        return Batch(one_hot(ids, len(SYMBOLS)), np.stack(targets), np.ones(ids.shape, bool),
                     extra={"possible": possible, "tp": closing, "new_streams": new})

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        B = check_batch_size(self.name, batch_size)
        new = B not in self._streams
        if new:
            self._streams[B] = [self._empty() for _ in range(B)]
        return self._batch(self._streams[B], rng, self.T, new)

    def _make_test_set(self) -> Batch:
        return self._batch([self._empty()], np.random.default_rng([self.seed, 2]), self.test_steps, True)

    def evaluate(self, out: np.ndarray, batch: Batch) -> dict[str, float]:
        """out: (B, T, 7) logits. Metrics: accuracy_tp, step_accuracy, frac_wrong, loss, solved.
        A non-finite logit makes its step wrong, and the batch unsolved."""
        _, metrics = _evaluate(self.name, out, batch)
        return {**metrics, "frac_wrong": 1 - metrics["step_accuracy"],
                "solved": float(metrics["accuracy_tp"] >= 0.95 and finite(out, batch.mask).all())}
