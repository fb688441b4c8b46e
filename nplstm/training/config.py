"""The settings of a training run and the record it keeps: TrainConfig, History, the schedule.

What a checkpoint stores of them, and which of them a resumed run may change, are defined here too,
so that the trainer (trainer.py) and exact resume (resume.py) read one definition.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._checks import check_int


@dataclass
class TrainConfig:
    """How to train: every setting of the loop, with its default; checked when built (ValueError)."""
    steps: int = 10_000              # maximum number of updates
    batch_size: int = 32             # sequences per update
    lr: float = 1e-2                 # peak learning rate
    optimizer: str = "adam"          # "adam" | "adamw" | "sgd" | "rmsprop"
    momentum: float = 0.0            # SGD only
    weight_decay: float = 0.0        # adamw: decoupled decay of every weight (AdamW); sgd: L2 folded into the gradient
    clip: float | None = 1.0         # max global gradient norm; None: no clipping
    lr_schedule: str = "constant"    # "constant" | "cosine" (lr -> lr*min_lr_frac over `steps`) | "step"
    warmup: int = 0                  # linear warm-up from lr/warmup over the first `warmup` updates
    min_lr_frac: float = 0.0         # cosine: the final lr as a fraction of lr
    step_size: int = 1000            # step: multiply lr by step_gamma every step_size updates
    step_gamma: float = 0.1
    eval_every: int = 100            # updates between test-set evaluations (and one after the last update)
    eval_batch: int = 1000           # test sequences run at once, to bound memory
    early_stop: bool = True          # stop at the first evaluation the task calls solved
    patience: int | None = None      # also stop after this many evaluations without a lower test loss
    seed: int = 0                    # the training data order (the model's init has its own seed)
    log_every: int = 100             # updates between progress lines or bar refreshes; 0: silent
    checkpoint_every: int = 0        # updates between checkpoints (0: only at the end); needs run_dir
    run_dir: Path | None = None      # history.json, config.json, checkpoint.npz; None: write nothing
    progress: bool = True            # a tqdm bar when tqdm is installed; False (or no tqdm): plain lines
    detect_anomaly: bool = False     # stop at the first NaN or Inf with an AnomalyError that explains it
    schedule_steps: int | None = None  # the cosine schedule's horizon (None: steps); a resumed run keeps its own
    overwrite: bool = False          # replace a run already in run_dir (else a new run there is refused)
    override: tuple = ()             # settings a resumed run may change from its checkpoint's: "lr", "clip"
    restore_best: bool = False       # at the end, put back the parameters of the evaluation with the lowest test loss

    def __post_init__(self):
        choices = {"optimizer": ("adam", "adamw", "sgd", "rmsprop"), "lr_schedule": ("constant", "cosine", "step")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: expected one of {allowed}, got {getattr(self, name)!r}")
        for name in ("steps", "eval_every", "eval_batch", "step_size"):
            check_int(name, getattr(self, name))
        check_int("batch_size", self.batch_size, maximum=MAX_BATCH)
        for name in ("warmup", "seed", "log_every", "checkpoint_every"):
            check_int(name, getattr(self, name), minimum=0)
        for name in ("patience", "schedule_steps"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name))
        _number("lr", self.lr, above=0)
        _number("momentum", self.momentum, least=0, below=1)
        _number("weight_decay", self.weight_decay, least=0)
        if self.weight_decay and self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"weight_decay: applies to the optimizers adamw and sgd, got optimizer {self.optimizer!r}")
        _number("min_lr_frac", self.min_lr_frac, least=0, most=1)
        _number("step_gamma", self.step_gamma, above=0)
        if self.clip is not None:
            _number("clip", self.clip, above=0)
        unknown = sorted(set(self.override) - set(OVERRIDABLE))
        if unknown:
            raise ValueError(f"override: expected some of {OVERRIDABLE}, got {unknown[0]!r}")
        if self.checkpoint_every and self.run_dir is None:
            raise ValueError("checkpoint_every: checkpoints need a run_dir")
        self.run_dir = None if self.run_dir is None else Path(self.run_dir)
        self.override = tuple(self.override)


# What a resumed run may differ in from its checkpoint: how long it goes on and how it reports, and
# (only when named in `override`) OVERRIDABLE; every other setting shapes the updates and must match.
FREE_ON_RESUME = ("steps", "eval_every", "eval_batch", "early_stop", "patience", "log_every", "checkpoint_every",
                  "run_dir", "progress", "detect_anomaly", "overwrite", "override", "restore_best")
OVERRIDABLE = ("lr", "clip")
RUN_FILES = ("config.json", "history.json", "checkpoint.npz")
MAX_BATCH = 10 ** 6     # sequences per update; far past any batch that fits a float32 LSTM in memory


def _number(name: str, value, *, above=None, least=None, below=None, most=None) -> None:
    """ValueError unless value is a finite real number within the given bounds."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value)
    ok = ok and (above is None or value > above) and (least is None or value >= least) \
        and (below is None or value < below) and (most is None or value <= most)
    if not ok:
        bounds = [f"{op} {bound:g}" for op, bound in ((">", above), (">=", least), ("<", below), ("<=", most))
                  if bound is not None]
        raise ValueError(f"{name}: expected a finite number {' and '.join(bounds)}, got {value!r}".replace("  ", " "))


@dataclass
class History:
    """One record per evaluation, and the summary of the run (saved as history.json)."""
    # per evaluation: step, sequences_seen, train_loss (mean since the last one), test{loss, task metrics},
    # lr, grad_norm{mean, max} (before clipping, since the last one), seconds (of training so far),
    # grad_norm_per_param{key: root mean square of that gradient's norm since the last one, before clipping},
    # clipped (updates since the last one whose gradient was scaled down), and from the last training
    # batch's forward (monitor.gate_stats): saturation{prefix: {i, f, g, o}} (a GRU's {r, z, n}),
    # cell{prefix: {max_abs, mean_abs}} (an LSTM's only)
    records: list[dict] = field(default_factory=list)
    solved: bool = False
    step_solved: int | None = None
    sequences_to_solve: int | None = None              # step_solved * batch_size
    steps_done: int = 0
    stopped: str = ""                      # "solved" | "patience" | "steps" | "anomaly" | "non-finite"; "" while running
    wall_seconds: float = 0.0
    anomaly: str = ""                      # the AnomalyError's report, or the NonFiniteError's line


def lr_at(cfg: TrainConfig, step: int) -> float:
    """The learning rate of update `step` (1-based): linear warm-up, then the schedule.

    cosine falls from lr towards lr·min_lr_frac over schedule_steps (default: steps) updates; past
    them it keeps the lr of its last update, so that extending a run (a larger `steps` on resume)
    leaves the updates it already made, and its schedule, exactly as they were."""
    if step <= cfg.warmup:
        return cfg.lr * step / cfg.warmup
    t = step - 1 - cfg.warmup                 # updates since warm-up: 0, 1, ...
    if cfg.lr_schedule == "step":
        return cfg.lr * cfg.step_gamma ** (t // cfg.step_size)
    if cfg.lr_schedule == "cosine":
        low = cfg.lr * cfg.min_lr_frac
        horizon = max(1, (cfg.schedule_steps or cfg.steps) - cfg.warmup)
        return low + (cfg.lr - low) * 0.5 * (1 + math.cos(math.pi * min(t, horizon - 1) / horizon))
    return cfg.lr


def new_window() -> dict:
    """What the loop gathers between two evaluations (saved in checkpoints, so JSON-serializable)."""
    return {"losses": [], "grad_norms": [], "grad_sq": {}, "clipped": 0}


def settings(cfg: TrainConfig) -> dict:
    """TrainConfig as JSON: the settings a checkpoint stores and a resume compares."""
    return {**dataclasses.asdict(cfg), "run_dir": None if cfg.run_dir is None else str(cfg.run_dir),
            "override": list(cfg.override)}
