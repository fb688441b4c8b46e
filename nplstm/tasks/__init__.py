"""The classic LSTM benchmarks as seeded NumPy generators, each with its paper's success criterion.

    task = make_task("adding", T=100)
    batch = task.batch(np.random.default_rng(0), 32)        # Batch(x, y, mask, lengths, extra)
    metrics = task.evaluate(model_outputs, task.test_set())  # {"solved": ..., "frac_wrong": ..., ...}
    task.paper                                               # the published numbers, with their source

| name | paper | criterion (solved) |
|---|---|---|
| adding | Hochreiter & Schmidhuber 1997, Exp. 4 | |error| < 0.04, < 1 wrong per 2000 |
| temporal_order | 1997, Exp. 6a / 6b | argmax class, < 1 wrong per 2000 |
| reber | 1997, Exp. 1 | possible next symbols most active, every step of every string |
| continual_reber | Gers, Schmidhuber & Cummins 2000 | accuracy on the repeated T/P >= 0.95 (ours) |
| noise_free_lag | 1997, Exp. 2a | every output's error < 0.25 |
| copy | Arjovsky, Shah & Bengio 2016 | all 10 symbols copied on >= 99% (ours) |
| timing | Gers, Schraudolph & Schmidhuber 2002 (MSD) | every spike delay measured to the step (ours) |
| timed_spikes | Gers, Schraudolph & Schmidhuber 2002 (GTS) | every output within 0.49 of its target, every step |
| charlm | - | held-out loss below the bigram entropy (ours) |
| series | your CSV series (tasks/files.py) | none: the test split beside persistence and seasonal-naive |
| sequences | your .npz of labelled sequences | none: the test split's metrics |

Provenance of `paper` numbers: the task definitions of Exp. 4 and 6 and the 0.3 criterion were
checked against the text of the NIPS 1996 version (Hochreiter & Schmidhuber, "LSTM can solve hard
long time lag problems"); 74,000 sequences (adding, T = 100) against a quotation of it; the other
counts are quoted from the 1997 paper's tables without a fresh check here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

from .base import Batch, Task
from .charlm import CharLM
from .copying import Copy
from .files import Sequences, Series
from .long_lag import Adding, NoiseFreeLag, TemporalOrder
from .reber import ContinualReber, Reber, embedded_reber, next_symbol_sets, possible_next
from .timing import SpikeDelays, TimedSpikes

TASKS: dict[str, Callable[..., Task]] = {
    "adding": Adding,
    "temporal_order": TemporalOrder,
    "reber": Reber,
    "continual_reber": ContinualReber,
    "noise_free_lag": NoiseFreeLag,
    "copy": Copy,
    "timing": SpikeDelays,
    "timed_spikes": TimedSpikes,
    "charlm": CharLM,
    "series": Series,
    "sequences": Sequences,
}


def make_task(name: str, **options) -> Task:
    """The task called `name`, built with keyword `options` (e.g. T=200, seed=1).

    Raises ValueError for an unknown name or option, or an option value out of range.
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of: {', '.join(TASKS)}")
    if name == "temporal_order" and "variant" in options:   # its name before LSTM variants took --variant
        options = {("experiment" if k == "variant" else k): v for k, v in options.items()}
    accepted = [f.name for f in fields(TASKS[name]) if f.init]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {', '.join(unknown)}; expected some of: {', '.join(accepted)}")
    return TASKS[name](**options)


__all__ = ["Batch", "Task", "TASKS", "make_task", "Adding", "TemporalOrder", "Reber", "ContinualReber",
           "NoiseFreeLag", "Copy", "SpikeDelays", "TimedSpikes", "CharLM", "Series", "Sequences", "embedded_reber", "next_symbol_sets", "possible_next"]
