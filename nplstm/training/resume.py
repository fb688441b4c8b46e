"""Exact resume: what a checkpoint stores of a training loop, and how a run continues from it.

save_state writes everything the loop needs to go on bit-identically after `step` updates (parameters,
optimizer state, the data-order RNG, a stream's carried state and position, the history, the settings);
resume loads it back and refuses a checkpoint of another task, model, data or training settings.
"""
from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from .checkpoint import load_checkpoint, model_config, params_from, save_checkpoint, scaler_arrays
from .config import FREE_ON_RESUME, OVERRIDABLE, RUN_FILES, History, TrainConfig, new_window, settings


def check_run_dir(cfg: TrainConfig, resume_from) -> None:
    """A new run never replaces another one by accident: refused unless resuming or cfg.overwrite."""
    if cfg.run_dir is None or resume_from is not None or cfg.overwrite:
        return
    held = [name for name in RUN_FILES if (cfg.run_dir / name).exists()]
    if held:
        raise ValueError(f"run dir {cfg.run_dir} already holds a run ({', '.join(held)}): continue it with --resume "
                         f"(resume_from=), replace it with --overwrite (overwrite=True), or choose another run dir")


def save_state(path, model, task, opt, rng, history, window, state, cfg, best=None):
    """Everything the loop needs to continue bit-identically after `step` updates. best: with
    restore_best, the parameters of the best evaluation so far ("best/..."; load_model returns them)."""
    arrays = {**{"params/" + k: v for k, v in model.params.items()}, **{"best/" + k: v for k, v in (best or {}).items()},
              **{"optim/" + k: v for k, v in opt.state_dict().items()}, **scaler_arrays(model)}
    if state is not None:                    # a stream's carried state: an LSTM's (h, c), a GRU's h alone
        arrays.update(zip(("stream/h", "stream/c"), state if isinstance(state, tuple) else (state,)))
    meta = {"step": history.steps_done, "task": task.name, "model": model_config(model),
            "task_options": task.options() if hasattr(task, "options") else None,
            "vocab": getattr(task, "vocab", None),
            "rng": rng.bit_generator.state, "task_state": task.get_state() if hasattr(task, "get_state") else None,
            "history": dataclasses.asdict(history), "window": window, "train": settings(cfg)}
    save_checkpoint(path, arrays, meta)


def resume(path, model, task, opt, rng, state, cfg):
    """Load a checkpoint into model, opt, rng and task -> (step, window, history, carried state, cfg).

    Refuses a checkpoint of another task, model, task options or training settings (FREE_ON_RESUME
    may differ; OVERRIDABLE ones only when cfg.override names them). The returned cfg carries the
    checkpoint's schedule horizon unless cfg sets its own.
    """
    arrays, meta = load_checkpoint(path, required=("optim/t",))
    if meta.get("task") != task.name or meta.get("model") != model_config(model):
        raise ValueError(f"resume_from {path}: saved for task {meta.get('task')!r} with model "
                         f"{meta.get('model')}, got task {task.name!r} with model {model_config(model)}")
    options = task.options() if hasattr(task, "options") else None
    if meta.get("task_options") != options:
        saved = meta.get("task_options") if isinstance(meta.get("task_options"), dict) else {}
        diff = sorted(k for k in set(saved) | set(options or {}) if saved.get(k) != (options or {}).get(k))
        raise ValueError(f"resume_from {path}: the run's task {task.name} had "
                         + ", ".join(f"{k}={saved.get(k)!r}" for k in diff) + ", this one has "
                         + ", ".join(f"{k}={(options or {}).get(k)!r}" for k in diff) + "; resume with the same data")
    saved = meta.get("train")
    if isinstance(saved, dict):
        now = settings(cfg)
        for key, value in now.items():
            if key in FREE_ON_RESUME or key in cfg.override or key not in saved:
                continue
            if key == "schedule_steps" and value is None:
                continue
            if saved[key] != value:
                hint = f", or allow it with override=({key!r},) / --override {key}" if key in OVERRIDABLE else ""
                raise ValueError(f"resume_from {path}: the run was trained with {key}={saved[key]!r}, this one "
                                 f"has {key}={value!r}; resume with the same settings{hint}")
        if cfg.schedule_steps is None:
            cfg = dataclasses.replace(cfg, schedule_steps=saved.get("schedule_steps") or saved.get("steps"))
    step = meta.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"resume_from {path}: the checkpoint's step is {step!r}, expected an int >= 0")
    history, window = _history(meta.get("history"), path), _window(meta.get("window"), path)
    if meta.get("task_state") is not None and not hasattr(task, "set_state"):
        raise ValueError(f"resume_from {path}: the checkpoint holds a stream position, but task {task.name} has none")
    try:                                     # on a scratch generator first: a bad state changes nothing
        np.random.default_rng().bit_generator.state = meta.get("rng")
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        raise ValueError(f"resume_from {path}: the checkpoint's rng state is malformed ({err})") from None
    params = params_from(arrays, model, path)
    scratch = type(opt)(opt.lr, **opt.hyper)  # the optimizer state, checked before anything is replaced
    try:
        scratch.load_state_dict({k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")})
    except ValueError as err:
        raise ValueError(f"resume_from {path}: {' '.join(str(err).split())}") from None
    if not step == history.steps_done == scratch.t or (history.records and history.records[-1]["step"] > step):
        raise ValueError(f"resume_from {path}: its step counts disagree (step {step}, history {history.steps_done}, "
                         f"optimizer {scratch.t}, last evaluation {history.records[-1]['step'] if history.records else '-'})")
    state = _stream(arrays, state, model, path) if getattr(task, "stateful", False) else _no_stream(arrays, path)
    if meta.get("task_state") is not None:
        try:
            task.set_state(meta["task_state"])
        except (TypeError, ValueError, KeyError, IndexError, OverflowError, AttributeError) as err:
            raise ValueError(f"resume_from {path}: the checkpoint's task state is malformed ({err})") from None
    model.load_params(params)
    opt.state, opt.t = scratch.state, scratch.t
    rng.bit_generator.state = meta["rng"]
    if meta.get("task_state") is None and getattr(task, "stateful", False):
        warnings.warn(f"task {task.name} has no get_state/set_state: its streams restart, so resume is not exact")
    best = params_from({"params/" + k[5:]: v for k, v in arrays.items() if k.startswith("best/")}, model, path) \
        if cfg.restore_best and any(k.startswith("best/") for k in arrays) else None
    return step, window, history, state, cfg, best


def _stream(arrays, state, model, path):
    """A stream's carried state like `state` (the zeros the loop starts with): an LSTM's (h, c) or a GRU's h,
    each (L·D, B, H)."""
    if "stream/h" not in arrays and "stream/c" not in arrays:
        raise ValueError(f"resume_from {path}: the task is a stream but the checkpoint has no carried state")
    carried, pair = [], isinstance(state, tuple)
    if not pair and "stream/c" in arrays:
        raise ValueError(f"resume_from {path}: the checkpoint carries an LSTM's (h, c), but the model is a GRU")
    for name, zeros in zip(("stream/h", "stream/c"), state if pair else (state,)):
        a = arrays.get(name)
        if a is None or a.shape != zeros.shape or a.dtype != zeros.dtype or not np.isfinite(a).all():
            got = "missing" if a is None else f"{a.dtype.name}{a.shape}" + ("" if np.isfinite(a).all() else " with NaN/Inf")
            raise ValueError(f"resume_from {path}: {name} is {got}, expected finite {zeros.dtype.name}{zeros.shape}")
        carried.append(a)
    return tuple(carried) if pair else carried[0]


def _no_stream(arrays, path):
    if "stream/h" in arrays or "stream/c" in arrays:
        raise ValueError(f"resume_from {path}: the checkpoint carries a stream state, but the task is not a stream")
    return None


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _numbers(value) -> bool:
    return isinstance(value, list) and all(_number(v) for v in value)


def _window(window, path) -> dict:
    """The loop's numbers since the last evaluation, as save_state wrote them, or ValueError."""
    ok = isinstance(window, dict) and _numbers(window.get("losses")) and _numbers(window.get("grad_norms")) \
        and isinstance(window.get("grad_sq"), dict) and _numbers(list(window["grad_sq"].values())) \
        and isinstance(window.get("clipped"), int) and not isinstance(window["clipped"], bool) and window["clipped"] >= 0
    if not ok:
        raise ValueError(f"resume_from {path}: the checkpoint's 'window' is missing or malformed")
    return {**new_window(), **window}


def _history(history, path) -> History:
    """History from the checkpoint's dict: its fields, records that are evaluation records, or ValueError."""
    kinds = {"records": list, "solved": bool, "step_solved": (int, type(None)), "sequences_to_solve": (int, type(None)),
             "steps_done": int, "stopped": str, "wall_seconds": (int, float), "anomaly": str}
    ok = isinstance(history, dict) and set(history) <= set(kinds) and all(
        isinstance(history.get(k, "missing" if k != "anomaly" else ""), kind) for k, kind in kinds.items()) \
        and _number(history["wall_seconds"]) and history["wall_seconds"] >= 0 \
        and all(isinstance(r, dict) and isinstance(r.get("test"), dict) and _number(r["test"].get("loss"))
                and isinstance(r.get("step"), int) and _number(r.get("train_loss")) for r in history["records"])
    if not ok:
        raise ValueError(f"resume_from {path}: the checkpoint's 'history' is missing or malformed")
    return History(**history)
