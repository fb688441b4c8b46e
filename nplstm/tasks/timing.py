"""The timing tasks of Gers, Schraudolph & Schmidhuber (2002), "Learning Precise Timing with LSTM
Recurrent Networks", JMLR 3:115-143, on which peepholes are said to matter: measuring spike delays
(MSD) and generating timed spikes (GTS). docs/results.md ("Do peepholes matter?") lists what we took
from the paper and what we had to assume."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Batch, Task, check_batch_size, check_int, check_out, finite


@dataclass(eq=False, kw_only=True)
class SpikeDelays(Task):
    """Measuring spike delays (MSD): at each input spike, output the time since the previous one.

    x: (B, T, 1) float32, 1.0 at spikes; y: (B, T, 1) float32, delay / t_max at every spike but
    the first, 0 elsewhere; mask: (B, T) True at those spikes; per-step "mse".

    A spike train starts at step 0; the gaps between spikes are drawn uniformly from
    [t_min, t_max]. The network must count steps, read the count out at the spike, and restart
    it: an unsquashed cell can count, and the peephole connections let the gates act on that
    count (the paper's point). The default gaps, 49 or 50 steps with no shorter training
    exemplars, are the distinction the paper's abstract reports peephole LSTM learning.
    Our criterion (we could not consult the paper's tables): a spike is measured correctly if
    out * t_max rounds to the true delay (|error| < 0.5 step); solved = every spike of the batch.
    """
    T: int = 500              # steps per sequence
    t_min: int = 49           # shortest gap between spikes
    t_max: int = 50           # longest gap; targets are gap / t_max
    seed: int = 0
    test_size: int = 256

    name = "timing"
    input_size = 1
    output_size = 1
    loss = "mse"
    many_to_one = False
    paper = {"source": "Gers, Schraudolph & Schmidhuber 2002, JMLR 3:115-143, abstract",
             "finding": "LSTM with peephole connections learns the fine distinction between sequences "
                        "of spikes spaced either 50 or 49 time steps apart, without short training exemplars"}

    def __post_init__(self):
        check_int(self.name, "t_min", self.t_min, 1)
        check_int(self.name, "t_max", self.t_max, self.t_min)
        check_int(self.name, "T", self.T, self.t_max + 1)          # room for at least one measured spike
        check_int(self.name, "test_size", self.test_size, 1)

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        B, T = check_batch_size(self.name, batch_size), self.T
        gaps = rng.integers(self.t_min, self.t_max + 1, (B, T // self.t_min + 1))
        times = np.concatenate([np.zeros((B, 1), gaps.dtype), np.cumsum(gaps, axis=1)], axis=1)
        rows = np.broadcast_to(np.arange(B)[:, None], times.shape)
        spike = times < T
        x = np.zeros((B, T, 1), np.float32)
        x[rows[spike], times[spike], 0] = 1.0
        measured = spike[:, 1:]                                    # every spike after the first
        at = rows[:, 1:][measured], times[:, 1:][measured]
        y = np.zeros((B, T, 1), np.float32)
        y[at + (0,)] = gaps[measured] / self.t_max
        mask = np.zeros((B, T), bool)
        mask[at] = True
        return Batch(x, y, mask)

    def _make_test_set(self) -> Batch:
        return self.batch(np.random.default_rng([self.seed, 1]), self.test_size)

    def evaluate(self, out: np.ndarray, batch: Batch) -> dict[str, float]:
        """out: (B, T, 1). Metrics: mse (at the spikes), wrong, frac_wrong, accuracy (per spike), solved.
        A non-finite output at a spike is wrong."""
        out = check_out(self.name, out, batch.y.shape)
        err = out[..., 0][batch.mask] - batch.y[..., 0][batch.mask]          # (spikes,)
        wrong = int(((np.abs(err) * self.t_max >= 0.5) | ~finite(out)[batch.mask]).sum())  # nan >= 0.5 is False
        return {"mse": float(np.mean(err ** 2)), "wrong": float(wrong), "frac_wrong": wrong / len(err),
                "accuracy": 1 - wrong / len(err), "solved": float(wrong == 0)}


GTS_TOLERANCE = 0.49   # Gers et al. 2002: an output is right if within 0.49 of its target


@dataclass(eq=False, kw_only=True)
class TimedSpikes(Task):
    """Generating timed spikes (GTS): after one start signal, emit a spike every `period` steps, unprompted.

    x: (B, T, 1) float32, 1.0 at the start step s (uniform in [0, period)), 0 elsewhere;
    y: (B, T, 1) float32, 1.0 at s + k·period for k = 1, 2, ..., 0 elsewhere (before the start too);
    mask: (B, T) all True, every step counts: the network must also stay silent between spikes.
    Per-step "mse".

    No input after the start, no reset and no teacher forcing (the network never sees its own or
    the target's spikes): it must time the period with its cell state and restart its own count.
    Criterion of Gers et al. 2002: every output within 0.49 of its target; solved = every step of
    every sequence. (The paper runs one continuous stream; our sequences are T steps long.)
    """
    T: int = 200              # steps per sequence
    period: int = 20          # steps between spikes, and from the start signal to the first spike
    seed: int = 0
    test_size: int = 64

    name = "timed_spikes"
    input_size = 1
    output_size = 1
    loss = "mse"
    many_to_one = False
    paper = {"source": "Gers, Schraudolph & Schmidhuber 2002, JMLR 3:115-143, abstract",
             "finding": "without external resets or teacher forcing, LSTM with peephole connections learns to "
                        "generate stable streams of precisely timed spikes"}

    def __post_init__(self):
        check_int(self.name, "period", self.period, 1)
        check_int(self.name, "T", self.T, 2 * self.period)         # room for a spike after the latest start
        check_int(self.name, "test_size", self.test_size, 1)

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        B, T, n = check_batch_size(self.name, batch_size), self.T, self.period
        start = rng.integers(0, n, B)
        steps = np.arange(T)
        since = steps[None] - start[:, None]                       # (B, T) steps since the start signal
        x = (since == 0).astype(np.float32)[..., None]
        y = ((since > 0) & (since % n == 0)).astype(np.float32)[..., None]
        return Batch(x, y, np.ones((B, T), bool))

    def _make_test_set(self) -> Batch:
        return self.batch(np.random.default_rng([self.seed, 1]), self.test_size)

    def evaluate(self, out: np.ndarray, batch: Batch) -> dict[str, float]:
        """out: (B, T, 1). Metrics: mse, wrong (steps off by 0.49 or more, or not finite), frac_wrong,
        spikes_missed, false_spikes, accuracy (per sequence: every step right), solved (every sequence)."""
        out = check_out(self.name, out, batch.y.shape)
        err = np.abs(out - batch.y)[..., 0]                                  # (B, T)
        wrong = ~(err < GTS_TOLERANCE) & batch.mask                          # NaN is wrong
        spike = batch.y[..., 0] > 0
        right = ~wrong.any(1)
        return {"mse": float(np.mean(err[batch.mask] ** 2)),
                "wrong": float(wrong.sum()), "frac_wrong": float(wrong.sum() / batch.mask.sum()),
                "spikes_missed": float((wrong & spike).sum()), "false_spikes": float((wrong & ~spike).sum()),
                "accuracy": float(right.mean()), "solved": float(right.all())}
