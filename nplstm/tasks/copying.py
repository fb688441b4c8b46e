"""The copy memory problem (Arjovsky, Shah & Bengio 2016, section 4.1; after Hochreiter &
Schmidhuber 1997)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ops import log_softmax
from .base import Batch, Task, check_batch_size, check_int, check_out, finite, mean_xent, one_hot

N_COPY, N_DATA, BLANK, DELIMITER = 10, 8, 8, 9   # 10 symbols from 8 categories; ids 8 and 9


@dataclass(eq=False, kw_only=True)
class Copy(Task):
    """Copy memory: read 10 symbols, wait, and write them back after a delimiter.

    x: (B, T+20, 10) float32 one-hot; y: (B, T+20) int64; mask: (B, T+20) all True (per-step "xent").

    Arjovsky, Shah & Bengio 2016, section 4.1: 10 symbols drawn uniformly from categories 0-7,
    then T-1 blanks (8), a delimiter (9), and 10 more blanks, T+20 steps in all. The target is
    blank for the first T+10 steps, then the 10 symbols in order. The memoryless strategy
    (blank, then a uniform guess over the 8 categories) scores a mean cross-entropy of
    10 ln 8 / (T+20), "baseline_xent". The paper shows loss curves only; our criterion:
    solved = all 10 copied symbols right (argmax) on at least 99% of the sequences.
    """
    T: int = 100              # the delay: blanks between the last symbol and the delimiter, plus one
    seed: int = 0
    test_size: int = 1000

    name = "copy"
    input_size = 10
    output_size = 10
    loss = "xent"
    many_to_one = False

    def __post_init__(self):
        check_int(self.name, "T", self.T, 1)
        check_int(self.name, "test_size", self.test_size, 1)

    @property
    def baseline_xent(self) -> float:
        return float(N_COPY * np.log(N_DATA) / (self.T + 20))

    @property
    def paper(self) -> dict:
        return {"source": "Arjovsky, Shah & Bengio 2016, section 4.1", "T": self.T,
                "baseline_xent": self.baseline_xent}

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        B, T = check_batch_size(self.name, batch_size), self.T
        symbols = rng.integers(0, N_DATA, (B, N_COPY))
        ids = np.full((B, T + 20), BLANK)
        ids[:, :N_COPY] = symbols
        ids[:, T + 9] = DELIMITER                                  # after 10 symbols and T-1 blanks
        y = np.full((B, T + 20), BLANK, np.int64)
        y[:, T + 10:] = symbols
        return Batch(one_hot(ids, self.input_size), y, np.ones(y.shape, bool))

    def _make_test_set(self) -> Batch:
        return self.batch(np.random.default_rng([self.seed, 1]), self.test_size)

    def evaluate(self, out: np.ndarray, batch: Batch) -> dict[str, float]:
        """out: (B, T+20, 10) logits. Metrics: loss, baseline_xent, copy_accuracy, frac_wrong, solved.
        A non-finite logit makes its step and its sequence wrong, and the batch unsolved."""
        out = check_out(self.name, out, batch.y.shape + (self.output_size,))
        last = out[:, -N_COPY:]                                       # (B, 10, 10)
        copied = (last.argmax(-1) == batch.y[:, -N_COPY:]) & finite(last)  # (B, 10); argmax may pick a NaN
        ok = finite(out, batch.mask)                                  # (B,)
        frac_wrong = float(1 - (copied.all(1) & ok).mean())
        return {"loss": mean_xent(log_softmax(out), batch.y, batch.mask), "baseline_xent": self.baseline_xent,
                "copy_accuracy": float(copied.mean()), "frac_wrong": frac_wrong,
                "solved": float(frac_wrong <= 0.01 and ok.all())}
