"""Exact resume: what a checkpoint stores of a training loop, and how a run continues from it.

save_state writes everything the loop needs to go on bit-identically after `step` updates (parameters,
optimizer state, the data-order RNG, a stream's carried state and position, the history, the settings);
resume loads it back and refuses a checkpoint of another task, model, data or training settings.
"""
from __future__ import annotations

import dataclasses
import warnings

from .checkpoint import load_checkpoint, model_config, params_from, save_checkpoint
from .config import FREE_ON_RESUME, OVERRIDABLE, RUN_FILES, History, TrainConfig, new_window, settings


def check_run_dir(cfg: TrainConfig, resume_from) -> None:
    """A new run never replaces another one by accident: refused unless resuming or cfg.overwrite."""
    if cfg.run_dir is None or resume_from is not None or cfg.overwrite:
        return
    held = [name for name in RUN_FILES if (cfg.run_dir / name).exists()]
    if held:
        raise ValueError(f"run dir {cfg.run_dir} already holds a run ({', '.join(held)}): continue it with --resume "
                         f"(resume_from=), replace it with --overwrite (overwrite=True), or choose another run dir")


def save_state(path, model, task, opt, rng, history, window, state, cfg):
    """Everything the loop needs to continue bit-identically after `step` updates."""
    arrays = {**{"params/" + k: v for k, v in model.params.items()},
              **{"optim/" + k: v for k, v in opt.state_dict().items()}}
    if isinstance(state, tuple):
        arrays["stream/h"], arrays["stream/c"] = state
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
    for key, kind in (("rng", dict), ("history", dict), ("window", dict)):
        if not isinstance(meta.get(key), kind):
            raise ValueError(f"resume_from {path}: the checkpoint's {key!r} is missing or malformed")
    model.load_params(params_from(arrays, model, path))
    opt.load_state_dict({k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")})
    try:
        rng.bit_generator.state = meta["rng"]
        history = History(**meta["history"])
        if meta.get("task_state") is not None:
            task.set_state(meta["task_state"])
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"resume_from {path}: the checkpoint's rng, history or task state is malformed ({err})") from None
    if meta.get("task_state") is None and getattr(task, "stateful", False):
        warnings.warn(f"task {task.name} has no get_state/set_state: its streams restart, so resume is not exact")
    if "stream/h" in arrays:
        state = arrays["stream/h"], arrays["stream/c"]
    return step, {**new_window(), **meta["window"]}, history, state, cfg
