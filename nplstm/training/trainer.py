"""Training loop: a Task (nplstm.tasks) and a Model in, a History out; checkpoints and exact resume.

The task contract the trainer relies on: `name`, `input_size`, `output_size`, `loss` ("mse" or
"xent"), `many_to_one`, `batch(rng, B) -> Batch` (all randomness from rng), `test_set() -> Batch`,
`evaluate(out, batch) -> dict` including "solved" (1.0/0.0), and optionally
- `stateful = True`: consecutive batches continue the same B streams; the trainer carries
  (h_n, c_n) from one batch into the next with no gradient across the boundary (truncated BPTT);
- `get_state() -> dict` / `set_state(dict)`: the task's own stream position (JSON-serializable),
  saved in checkpoints so that a streaming task resumes exactly where it stopped.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..anomaly import AnomalyError, detect_anomaly
from ..layers import Model
from ..losses import mse, softmax_cross_entropy
from ..optim import SGD, Adam, RMSprop, clip_grad_norm
from .checkpoint import load_checkpoint, model_config, model_from_config, params_from, save_checkpoint, write_json
from .monitor import gate_stats, grad_norms

LOSSES = {"mse": mse, "xent": softmax_cross_entropy}


@dataclass
class TrainConfig:
    """How to train: every setting of the loop, with its default; checked when built (ValueError)."""
    steps: int = 10_000              # maximum number of updates
    batch_size: int = 32             # sequences per update
    lr: float = 1e-2                 # peak learning rate
    optimizer: str = "adam"          # "adam" | "sgd" | "rmsprop"
    momentum: float = 0.0            # SGD only
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

    def __post_init__(self):
        choices = {"optimizer": ("adam", "sgd", "rmsprop"), "lr_schedule": ("constant", "cosine", "step")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: expected one of {allowed}, got {getattr(self, name)!r}")
        for name in ("steps", "batch_size", "eval_every", "eval_batch", "step_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive int, got {getattr(self, name)!r}")
        if not self.lr > 0 or (self.clip is not None and not self.clip > 0):
            raise ValueError(f"lr, clip: expected positive numbers (clip may be None), got {self.lr!r}, {self.clip!r}")
        if self.checkpoint_every and self.run_dir is None:
            raise ValueError("checkpoint_every: checkpoints need a run_dir")
        self.run_dir = None if self.run_dir is None else Path(self.run_dir)


@dataclass
class History:
    """One record per evaluation, and the summary of the run (saved as history.json)."""
    # per evaluation: step, sequences_seen, train_loss (mean since the last one), test{loss, task metrics},
    # lr, grad_norm{mean, max} (before clipping, since the last one), seconds (of training so far),
    # grad_norm_per_param{key: root mean square of that gradient's norm since the last one, before clipping},
    # clipped (updates since the last one whose gradient was scaled down), and from the last training
    # batch's forward (monitor.gate_stats): saturation{prefix: {i, f, g, o}}, cell{prefix: {max_abs, mean_abs}}
    records: list[dict] = field(default_factory=list)
    solved: bool = False
    step_solved: int | None = None
    sequences_to_solve: int | None = None              # step_solved * batch_size
    steps_done: int = 0
    stopped: str = ""                                  # "solved" | "patience" | "steps" | "anomaly"; "" while running
    wall_seconds: float = 0.0
    anomaly: str = ""                                  # the AnomalyError's report when stopped == "anomaly"


def build_model(task, hidden_size: int, *, num_layers: int = 1, peephole: str | None = "diagonal",
                forget_gate: bool = True, bidirectional: bool = False, seed: int = 0, dtype=np.float32,
                forget_bias: float = 1.0) -> Model:
    """An LSTM + Linear head sized for `task` (input_size -> output_size), many-to-one if the task is."""
    cfg = {"input_size": task.input_size, "hidden_size": hidden_size, "num_layers": num_layers,
           "bidirectional": bidirectional, "peephole": peephole, "forget_gate": forget_gate,
           "output_size": task.output_size, "many_to_one": task.many_to_one, "dtype": np.dtype(dtype).name}
    return model_from_config(cfg, seed=seed, forget_bias=forget_bias)


def lr_at(cfg: TrainConfig, step: int) -> float:
    """The learning rate of update `step` (1-based): linear warm-up, then the schedule."""
    if step <= cfg.warmup:
        return cfg.lr * step / cfg.warmup
    t = step - 1 - cfg.warmup                 # updates since warm-up: 0, 1, ...
    if cfg.lr_schedule == "step":
        return cfg.lr * cfg.step_gamma ** (t // cfg.step_size)
    if cfg.lr_schedule == "cosine":
        low = cfg.lr * cfg.min_lr_frac
        return low + (cfg.lr - low) * 0.5 * (1 + math.cos(math.pi * t / max(1, cfg.steps - cfg.warmup)))
    return cfg.lr


def make_optimizer(cfg: TrainConfig):
    if cfg.optimizer == "sgd":
        return SGD(cfg.lr, momentum=cfg.momentum)
    return Adam(cfg.lr) if cfg.optimizer == "adam" else RMSprop(cfg.lr)


def train_step(model: Model, batch, loss_fn, state=None):
    """Forward, loss and backward on one batch; fills model.grads. Returns (loss, (h_n, c_n) or None).

    state: None for independent sequences; for a stream, the (h, c) carried from the previous
    batch (zeros at the first), each (L·D, B, H).
    """
    if state is None:
        out = model.forward(batch.x, lengths=batch.lengths)
        loss, dout = loss_fn(out, batch.y, batch.mask)
        model.backward(dout)
        return loss, None
    y, state_n = model.lstm.forward(batch.x, state, batch.lengths)
    loss, dout = loss_fn(model.head.forward(y), batch.y, batch.mask)   # per-step head: (B, T, O)
    model.lstm.backward(model.head.backward(dout))   # no dstate: the carried state is a constant (truncated BPTT)
    return loss, state_n


def evaluate(model: Model, task, test, eval_batch: int) -> dict[str, float]:
    """The task's test metrics plus "loss", running at most eval_batch sequences at once."""
    n = test.x.shape[0]
    out = np.concatenate([model.forward(test.x[i:i + eval_batch],
                                        lengths=None if test.lengths is None else test.lengths[i:i + eval_batch])
                          for i in range(0, n, eval_batch)])
    loss, _ = LOSSES[task.loss](out, test.y, test.mask)
    metrics = {"loss": loss, **{k: float(v) for k, v in task.evaluate(out, test).items()}}
    if "solved" not in metrics:
        raise ValueError(f"task {task.name}: evaluate() must return a 'solved' entry, got {sorted(metrics)}")
    return metrics


def stop_reason(history: History, cfg: TrainConfig) -> str:
    """"solved", "patience" or "" from the evaluations so far."""
    if cfg.early_stop and history.solved:
        return "solved"
    losses = [r["test"]["loss"] for r in history.records]
    if cfg.patience and len(losses) - 1 - int(np.argmin(losses)) >= cfg.patience:
        return "patience"
    return ""


def train(model: Model, task, cfg: TrainConfig, *, resume_from=None) -> History:
    """Train model on task for up to cfg.steps updates; resume_from: a checkpoint.npz to continue exactly."""
    if task.loss not in LOSSES:
        raise ValueError(f"task {task.name}: loss expected one of {tuple(LOSSES)}, got {task.loss!r}")
    stateful = getattr(task, "stateful", False)
    if stateful and model.many_to_one:
        raise ValueError(f"task {task.name} is a stream (stateful): it needs a many-to-many model")
    loss_fn, test = LOSSES[task.loss], task.test_set()
    opt, rng, history = make_optimizer(cfg), np.random.default_rng(cfg.seed), History()
    step, window = 0, _new_window()
    state = _zero_state(model, cfg.batch_size) if stateful else None
    if resume_from is not None:
        step, window, history, state = _resume(resume_from, model, task, opt, rng, state)
    if cfg.run_dir is not None:
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        write_json(cfg.run_dir / "config.json", _config_json(cfg, model, task))
    bar = _open_bar(cfg, step)
    start, stop = time.perf_counter() - history.wall_seconds, stop_reason(history, cfg)
    history.stopped = stop
    recent = deque(window["grad_norms"][-10:], maxlen=10)   # the norm history an anomaly report shows
    evaluating = False
    try:
        with detect_anomaly() if cfg.detect_anomaly else contextlib.nullcontext():
            while step < cfg.steps and not stop:
                step += 1
                opt.lr = lr_at(cfg, step)
                batch = task.batch(rng, cfg.batch_size)
                state = _update(model, batch, loss_fn, state, opt, cfg, window, recent)
                history.steps_done, history.wall_seconds = step, time.perf_counter() - start
                if step % cfg.eval_every == 0 or step == cfg.steps:
                    # the cache still holds this batch's forward: read it before evaluate() runs the test set
                    inside = gate_stats(model.lstm.internals(), batch.lengths, model.lstm.config.forget_gate)
                    evaluating = True
                    _add_record(history, window, cfg, opt.lr, evaluate(model, task, test, cfg.eval_batch), inside)
                    evaluating, window = False, _new_window()
                    stop = stop_reason(history, cfg)
                    history.stopped = stop or ("steps" if step == cfg.steps else "")
                    if cfg.run_dir is not None:
                        write_json(cfg.run_dir / "history.json", dataclasses.asdict(history))
                _report(bar, cfg, step, window, history)
                due = history.stopped or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0)
                if cfg.run_dir is not None and due:
                    _save(cfg.run_dir / "checkpoint.npz", model, task, opt, rng, history, window, state)
    except AnomalyError as err:
        err.add_training_context(update=step, lr=opt.lr, optimizer=type(opt).__name__, clip=cfg.clip,
                                 grad_norms=list(recent), params=model.params, evaluating=evaluating)
        history.stopped, history.anomaly = "anomaly", str(err)
        if cfg.run_dir is not None:
            write_json(cfg.run_dir / "history.json", dataclasses.asdict(history))
        raise
    finally:
        if bar is not None:
            bar.close()
    history.stopped = stop or "steps"
    return history


def _new_window() -> dict:
    """What the loop gathers between two evaluations (saved in checkpoints, so JSON-serializable)."""
    return {"losses": [], "grad_norms": [], "grad_sq": {}, "clipped": 0}


def _update(model, batch, loss_fn, state, opt, cfg, window, recent):
    """One update: forward, backward, clipping, optimizer step; gathers the window's numbers. Returns the state."""
    loss, state = train_step(model, batch, loss_fn, state)
    grads = model.grads
    for key, norm in grad_norms(grads).items():               # before clipping
        window["grad_sq"][key] = window["grad_sq"].get(key, 0.0) + norm * norm
    norm = clip_grad_norm(grads, cfg.clip or math.inf)        # the global norm before clipping
    window["clipped"] += int(cfg.clip is not None and cfg.clip / (norm + 1e-6) < 1)  # clip_grad_norm's own test
    window["grad_norms"].append(norm)
    window["losses"].append(loss)
    recent.append(norm)
    opt.step(model.params, grads)
    return state


def _add_record(history, window, cfg, lr, test, inside):
    step, norms = history.steps_done, window["grad_norms"]
    history.records.append({
        "step": step, "sequences_seen": step * cfg.batch_size, "train_loss": float(np.mean(window["losses"])),
        "test": test, "lr": lr, "grad_norm": {"mean": float(np.mean(norms)), "max": float(np.max(norms))},
        "seconds": history.wall_seconds,
        "grad_norm_per_param": {k: math.sqrt(sq / len(norms)) for k, sq in window["grad_sq"].items()},
        "clipped": window["clipped"], **inside})
    if test["solved"] and not history.solved:
        history.solved, history.step_solved, history.sequences_to_solve = True, step, step * cfg.batch_size


def _config_json(cfg, model, task):
    train_cfg = {**dataclasses.asdict(cfg), "run_dir": None if cfg.run_dir is None else str(cfg.run_dir)}
    task_cfg = {k: getattr(task, k) for k in ("name", "input_size", "output_size", "loss", "many_to_one")}
    task_cfg["options"] = task.options() if hasattr(task, "options") else None
    task_cfg["stateful"] = getattr(task, "stateful", False)
    return {"train": train_cfg, "model": model_config(model), "task": task_cfg}


def _save(path, model, task, opt, rng, history, window, state):
    """Everything the loop needs to continue bit-identically after `step` updates."""
    arrays = {**{"params/" + k: v for k, v in model.params.items()},
              **{"optim/" + k: v for k, v in opt.state_dict().items()}}
    if isinstance(state, tuple):
        arrays["stream/h"], arrays["stream/c"] = state
    meta = {"step": history.steps_done, "task": task.name, "model": model_config(model),
            "task_options": task.options() if hasattr(task, "options") else None,
            "vocab": getattr(task, "vocab", None),
            "rng": rng.bit_generator.state, "task_state": task.get_state() if hasattr(task, "get_state") else None,
            "history": dataclasses.asdict(history), "window": window}
    save_checkpoint(path, arrays, meta)


def _zero_state(model, B):
    c = model.lstm.config
    zeros = np.zeros((c.num_layers * c.num_directions, B, c.hidden_size), model.dtype)   # (L·D, B, H)
    return zeros, zeros.copy()


def _resume(path, model, task, opt, rng, state):
    """Load a checkpoint into model, opt, rng and task -> (step, window, history, carried state)."""
    arrays, meta = load_checkpoint(path, required=("optim/t",))
    if meta.get("task") != task.name or meta.get("model") != model_config(model):
        raise ValueError(f"resume_from {path}: saved for task {meta.get('task')!r} with model "
                         f"{meta.get('model')}, got task {task.name!r} with model {model_config(model)}")
    model.load_params(params_from(arrays, model, path))
    opt.load_state_dict({k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")})
    rng.bit_generator.state = meta["rng"]
    if meta["task_state"] is not None:
        task.set_state(meta["task_state"])
    elif getattr(task, "stateful", False):
        warnings.warn(f"task {task.name} has no get_state/set_state: its streams restart, so resume is not exact")
    if "stream/h" in arrays:
        state = arrays["stream/h"], arrays["stream/c"]
    return meta["step"], {**_new_window(), **meta["window"]}, History(**meta["history"]), state


def _open_bar(cfg, step):
    if not (cfg.progress and cfg.log_every):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=cfg.steps, initial=step, unit="upd", dynamic_ncols=True)


def _report(bar, cfg, step, window, history):
    """Refresh the bar, or print a line, every log_every updates (and advance the bar every update)."""
    if bar is not None:
        bar.update(1)
    if not cfg.log_every or step % cfg.log_every:
        return
    train = np.mean(window["losses"]) if window["losses"] else history.records[-1]["train_loss"]
    test = history.records[-1]["test"] if history.records else {}
    fields = {"loss": f"{train:.4g}", **{f"test_{k}": f"{v:.4g}" for k, v in test.items()}}
    if bar is not None:
        bar.set_postfix(fields, refresh=False)
    else:
        print(f"step {step}/{cfg.steps}  " + "  ".join(f"{k} {v}" for k, v in fields.items()), flush=True)
