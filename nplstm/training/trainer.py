"""Training loop: a Task and a Model in, a History out; checkpoints and exact resume.

The task contract is nplstm.tasks.base.TaskLike (a typing.Protocol): the trainer needs nothing else.
Settings and the record are in config.py, save and resume in resume.py, the model factory in
checkpoint.py (model_from_config).
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from collections import deque

import numpy as np

from .._checks import all_finite
from ..anomaly import AnomalyError, NonFiniteError, detect_anomaly
from ..grad import no_grad
from ..layers import Model, variant_flags
from ..losses import mse, softmax_cross_entropy
from ..optim import SGD, Adam, AdamW, RMSprop, clip_grad_norm
from .checkpoint import model_config, model_from_config, write_json
from .config import History, TrainConfig, lr_at, new_window, settings
from .monitor import gate_stats, grad_norms
from .resume import check_run_dir, resume, save_state

__all__ = ["TrainConfig", "History", "train", "build_model", "lr_at", "train_step", "evaluate", "stop_reason",
           "check_memory", "LOSSES"]

LOSSES = {"mse": mse, "xent": softmax_cross_entropy}


def build_model(task, hidden_size: int, *, num_layers: int = 1, bidirectional: bool = False, seed: int = 0,
                dtype=np.float32, forget_bias: float = 1.0, cell: str = "lstm", variant: str | None = None,
                embedding_dim: int | None = None, dropout: float = 0.0, **flags) -> Model:
    """An LSTM (cell="lstm") or GRU (cell="gru") + Linear head sized for `task` (input_size -> output_size),
    many-to-one if the task is.

    variant and flags: as nplstm.LSTM takes them (Greff's name, then peephole, forget_gate, ... on top);
    a GRU takes none of them (ValueError), and forget_bias does not apply to it.
    A task of token ids (one with `vocab_size`) gets an Embedding of embedding_dim (default 32) first;
    dropout: before the head. The task's `scaler` and `target` (your own data) go with the model.
    """
    if cell not in ("lstm", "gru"):
        raise ValueError(f"cell: expected 'lstm' or 'gru', got {cell!r}")
    if cell == "gru" and (variant is not None or flags):
        raise ValueError(f"cell 'gru': the LSTM's variant options do not apply, got "
                         f"{sorted(flags) + (['variant'] if variant else [])}")
    vocab = getattr(task, "vocab_size", None)
    if embedding_dim is not None and vocab is None:
        raise ValueError(f"embedding_dim: task {task.name} has vector inputs, not token ids; an embedding does not apply")
    shape = {"cell": "gru"} if cell == "gru" else variant_flags(variant, **flags)
    cfg = {"input_size": (embedding_dim or 32) if vocab else task.input_size, "hidden_size": hidden_size,
           "num_layers": num_layers, "bidirectional": bidirectional, **shape,
           "output_size": task.output_size, "many_to_one": task.many_to_one, "dtype": np.dtype(dtype).name,
           **({"vocab_size": vocab} if vocab else {}), **({"dropout": dropout} if dropout else {}),
           **({"target": task.target_type} if getattr(task, "target_type", None) else {})}
    model = model_from_config(cfg, seed=seed, forget_bias=forget_bias)
    model.scaler = getattr(task, "scaler", None)
    return model


def make_optimizer(cfg: TrainConfig):
    if cfg.optimizer == "sgd":
        return SGD(cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return AdamW(cfg.lr, weight_decay=cfg.weight_decay)
    return Adam(cfg.lr) if cfg.optimizer == "adam" else RMSprop(cfg.lr)


def train_step(model: Model, batch, loss_fn, state=None, rng=None):
    """Forward, loss and backward on one batch; fills model.grads. Returns (loss, the state after it or None).

    state: None for independent sequences; for a stream, the state carried from the previous batch
    (zeros at the first): an LSTM's (h, c), a GRU's h, each (L·D, B, H). rng: draws the model's dropout
    masks (None: no dropout).
    """
    if state is None:
        out = model.forward(batch.x, lengths=batch.lengths, rng=rng)
        loss, dout = loss_fn(_finite_output(out, "training batch"), batch.y, batch.mask)
        _finite_loss(loss, loss_fn)
        model.backward(dout)
        return loss, None
    y, state_n = model.lstm.forward(batch.x, state, batch.lengths)
    out = model.head.forward(y)                      # per-step head: (B, T, O)
    loss, dout = loss_fn(_finite_output(out, "training batch"), batch.y, batch.mask)
    _finite_loss(loss, loss_fn)
    model.lstm.backward(model.head.backward(dout))   # no dstate: the carried state is a constant (truncated BPTT)
    return loss, state_n


def _finite_output(out, where: str):
    if not all_finite(out):
        raise NonFiniteError(f"the model's output on the {where} is NaN or Inf "
                             f"({int((~np.isfinite(out)).sum())} of {out.size} values)")
    return out


def _finite_loss(loss: float, loss_fn) -> None:
    if not math.isfinite(loss):
        raise NonFiniteError(f"the loss ({loss_fn.__name__}) is {loss}")


def evaluate(model: Model, task, test, eval_batch: int) -> dict[str, float]:
    """The task's test metrics plus "loss", running at most eval_batch sequences at once."""
    n = test.x.shape[0]
    with no_grad():                          # inference: no cache for a backward
        out = np.concatenate([model.forward(test.x[i:i + eval_batch],
                                            lengths=None if test.lengths is None else test.lengths[i:i + eval_batch])
                              for i in range(0, n, eval_batch)])
    loss, _ = LOSSES[task.loss](_finite_output(out, "test set"), test.y, test.mask)
    metrics = {"loss": loss, **{k: float(v) for k, v in task.evaluate(out, test).items()}}
    if "solved" not in metrics:
        raise ValueError(f"task {task.name}: evaluate() must return a 'solved' entry, got {sorted(metrics)}")
    return metrics


def stop_reason(history: History, cfg: TrainConfig) -> str:
    """"solved", "patience" or "" from the evaluations so far."""
    if cfg.early_stop and history.solved:
        return "solved"
    losses = [r["test"]["loss"] for r in history.records]
    if cfg.patience and losses and len(losses) - 1 - int(np.argmin(losses)) >= cfg.patience:
        return "patience"
    return ""


def train(model: Model, task, cfg: TrainConfig, *, resume_from=None) -> History:
    """Train model on task for up to cfg.steps updates; resume_from: a checkpoint.npz to continue exactly.

    Raises NonFiniteError at the first update whose output, loss or gradient norm is NaN or Inf
    (detection off; on, detect_anomaly's AnomalyError says where it was born); the run dir then keeps
    its last finite checkpoint and a history whose `stopped` is "non-finite".
    """
    if task.loss not in LOSSES:
        raise ValueError(f"task {task.name}: loss expected one of {tuple(LOSSES)}, got {task.loss!r}")
    stateful = getattr(task, "stateful", False)
    if stateful and model.many_to_one:
        raise ValueError(f"task {task.name} is a stream (stateful): it needs a many-to-many model")
    if stateful and model.dropout:
        raise ValueError(f"task {task.name} is a stream (stateful): dropout is not supported on streams")
    check_run_dir(cfg, resume_from)
    check_memory(task, model_config(model), cfg)
    loss_fn, test = LOSSES[task.loss], task.test_set()
    opt, rng, history = make_optimizer(cfg), np.random.default_rng(cfg.seed), History()
    step, window = 0, new_window()
    state = _zero_state(model, cfg.batch_size) if stateful else None
    best = None                                  # restore_best: the parameters of the lowest test loss so far
    if resume_from is not None:
        step, window, history, state, cfg, best = resume(resume_from, model, task, opt, rng, state, cfg)
    elif cfg.schedule_steps is None:
        cfg = dataclasses.replace(cfg, schedule_steps=cfg.steps)
    if cfg.run_dir is not None:                  # everything is validated: only now is the run dir written
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        write_json(cfg.run_dir / "config.json", _config_json(cfg, model, task))
    bar = _open_bar(cfg, step)
    start, stop = time.perf_counter() - history.wall_seconds, stop_reason(history, cfg)
    history.stopped = stop
    recent = deque(window["grad_norms"][-10:], maxlen=10)   # the norm history an anomaly report shows
    evaluating = False
    try:
        # NumPy's overflow warnings would be the only sign of a diverging run: each update is checked instead
        with detect_anomaly() if cfg.detect_anomaly else np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            while step < cfg.steps and not stop:
                step += 1
                opt.lr = lr_at(cfg, step)
                batch = task.batch(rng, cfg.batch_size)
                state = _update(model, batch, loss_fn, state, opt, cfg, window, recent, rng)
                history.steps_done, history.wall_seconds = step, time.perf_counter() - start
                if step % cfg.eval_every == 0 or step == cfg.steps:
                    # the cache still holds this batch's forward: read it before evaluate() runs the test set
                    inside = gate_stats(model.lstm.internals(), batch.lengths,
                                        None if model.is_gru else model.lstm.config.variant)
                    evaluating = True
                    _add_record(history, window, cfg, opt.lr, evaluate(model, task, test, cfg.eval_batch), inside)
                    evaluating, window = False, new_window()
                    best = _keep_best(best, history, model, cfg)
                    stop = stop_reason(history, cfg)
                    history.stopped = stop or ("steps" if step == cfg.steps else "")
                    if cfg.run_dir is not None:
                        write_json(cfg.run_dir / "history.json", dataclasses.asdict(history))
                _report(bar, cfg, step, window, history)
                due = history.stopped or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0)
                if cfg.run_dir is not None and due:
                    save_state(cfg.run_dir / "checkpoint.npz", model, task, opt, rng, history, window, state, cfg, best)
    except AnomalyError as err:
        err.add_training_context(update=step, lr=opt.lr, optimizer=type(opt).__name__, clip=cfg.clip,
                                 grad_norms=list(recent), params=model.params, evaluating=evaluating)
        _stopped(history, cfg, "anomaly", str(err))
        raise
    except NonFiniteError as err:
        kept = cfg.run_dir is not None and (cfg.run_dir / "checkpoint.npz").exists()
        message = (f"{task.name}: {err}, " + ("evaluating the test set after " if evaluating else "at ")
                   + f"update {step}; training stopped" + (", the last finite checkpoint is kept" if kept else "")
                   + "; rerun with --detect-anomaly (TrainConfig(detect_anomaly=True)) to see where it was born")
        _stopped(history, cfg, "non-finite", message)
        raise NonFiniteError(message) from None
    finally:
        if bar is not None:
            bar.close()
    history.stopped = stop or "steps"
    if best is not None:
        model.load_params(best)
    return history


def _keep_best(best, history, model, cfg):
    """With cfg.restore_best: a copy of the parameters if the newest evaluation has the lowest test loss yet."""
    if not cfg.restore_best:
        return None
    losses = [r["test"]["loss"] for r in history.records]
    return {k: v.copy() for k, v in model.params.items()} if losses[-1] <= min(losses) else best


def _stopped(history: History, cfg: TrainConfig, why: str, report: str) -> None:
    history.stopped, history.anomaly = why, report
    if cfg.run_dir is not None:
        write_json(cfg.run_dir / "history.json", dataclasses.asdict(history))


def check_memory(task, model: dict, cfg: TrainConfig, available: int | None = None) -> None:
    """Refuse, before allocating anything large, a run whose arrays could not fit in memory.

    model: model_config's dict (sizes and variant). The estimate counts the parameters four times
    (weights, gradients, the optimizer's two moments) and, for the task's sequence length (its
    option T or p, or its max_steps), the float arrays of one training update (input, forward cache
    and the backward's δa, per layer and direction), of one evaluation chunk and of the test set.
    available: bytes (default: this machine's physical memory).
    """
    I, H, L, O = model["input_size"], model["hidden_size"], model["num_layers"], model["output_size"]
    D, item = 2 if model["bidirectional"] else 1, np.dtype(model["dtype"]).itemsize
    peep = {"diagonal": 3 * H, "full": 3 * H * H, None: 0}[model.get("peephole")]
    gates = 3 if model.get("cell") == "gru" else 4
    per_layer = [gates * H * (n_in + H + 1) + peep + 9 * H * H * bool(model.get("gate_recurrence"))
                 for n_in in [I] + [D * H] * (L - 1)]
    need = 4 * item * (D * sum(per_layer) + (D * H + 1) * O)
    T = getattr(task, "T", None) or getattr(task, "p", None) or getattr(task, "max_steps", None)
    if isinstance(T, int):
        per_step = (I + 1 + 9 * H) * L * D   # x1, z, c, h, tanh c, δa
        n_test = getattr(task, "test_size", 0) or 0
        need += T * item * (per_step * (cfg.batch_size + min(cfg.eval_batch, n_test or cfg.eval_batch))
                            + n_test * (I + O))
    if available is None:
        try:
            available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return
    if need > available:
        raise ValueError(f"this run needs about {need / 2 ** 30:,.1f} GiB ({L} layer(s) of {H:,} units"
                         + (f", sequences of {T:,} steps" if isinstance(T, int) else "")
                         + f", batch {cfg.batch_size}), more than the {available / 2 ** 30:,.1f} GiB of memory here: "
                         f"use a smaller model, shorter sequences or smaller batches")


def _update(model, batch, loss_fn, state, opt, cfg, window, recent, rng=None):
    """One update: forward, backward, clipping, optimizer step; gathers the window's numbers. Returns the state."""
    loss, state = train_step(model, batch, loss_fn, state, rng)
    grads = model.grads
    for key, norm in grad_norms(grads).items():               # before clipping
        window["grad_sq"][key] = window["grad_sq"].get(key, 0.0) + norm * norm
    norm = clip_grad_norm(grads, cfg.clip or math.inf)        # the global norm before clipping
    if not math.isfinite(norm):
        raise NonFiniteError(f"the global gradient norm is {norm} (the loss was {loss:.4g})")
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
    train_cfg = settings(cfg)
    task_cfg = {k: getattr(task, k) for k in ("name", "input_size", "output_size", "loss", "many_to_one")}
    task_cfg["options"] = task.options() if hasattr(task, "options") else None
    task_cfg["stateful"] = getattr(task, "stateful", False)
    return {"train": train_cfg, "model": model_config(model), "task": task_cfg}


def _zero_state(model, B):
    """A stream's first state: zeros (L·D, B, H), a pair (h, c) for an LSTM, h alone for a GRU."""
    c = model.lstm.config
    zeros = np.zeros((c.num_layers * c.num_directions, B, c.hidden_size), model.dtype)   # (L·D, B, H)
    return zeros if model.is_gru else (zeros, zeros.copy())


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


