"""Model.fit: your own arrays through the same trainer as the benchmarks (checkpoints, exact resume,
anomaly detection, monitoring, the report): the data becomes a tasks.user.Arrays task, not a second loop."""
from __future__ import annotations

import math

from .._checks import check_int
from ..tasks.user import Arrays, prepare, split
from .config import History, TrainConfig
from .trainer import train


def fit(model, x, y, *, lengths=None, mask=None, validation=0.1, steps: int | None = None,
        epochs: int | None = None, batch_size: int = 32, optimizer: str = "adam", lr: float = 1e-3,
        weight_decay: float = 0.0, clip: float | None = 1.0, schedule: str = "constant",
        early_stop: int | None = None, restore_best: bool = True, eval_every: int | None = None,
        standardize: bool = True, many_to_one: bool | None = None, run_dir=None, progress: bool = False,
        seed: int = 0, detect_anomaly: bool = False, resume: bool = False) -> History:
    """Train `model` on (x, y) and return the History (one record per evaluation of the validation split).

    x, y, lengths, mask: as tasks.user.prepare takes them (arrays, or lists of sequences; integer y is
    classes, float y values; the shapes say many-to-one or per step, which must match the model's head).
    validation: a fraction (the last part of the data as given, as Keras's validation_split), or
    (x_val, y_val[, lengths_val]); 0 or None: none (the training split is evaluated instead).
    steps or epochs: how long (epochs: passes over the training split at batch_size; default 10 epochs).
    optimizer: "adam", "adamw" (with weight_decay, decoupled), "sgd" or "rmsprop"; clip: max gradient norm.
    early_stop: patience, in evaluations without a lower validation loss; restore_best: end with the
    parameters of the best evaluation (the lowest validation loss). eval_every: updates between
    evaluations (default: once per epoch). standardize: fit the input (and regression target) scaler on
    the training split; it is saved with the model, and predict / evaluate apply it.
    run_dir: write config, history and checkpoint there (resume=True continues it exactly, given the same
    data). The model must be built for the data: its head's output size, many_to_one, an Embedding for
    token ids.
    """
    batch_size = check_int("batch_size", batch_size)     # before it divides anything
    if eval_every is not None:
        check_int("eval_every", eval_every)
    if early_stop is not None:
        check_int("early_stop", early_stop)
    if steps is not None and epochs is not None:
        raise ValueError("steps and epochs: give one (updates, or passes over the training data), not both")
    data = prepare(x, y, lengths, mask, many_to_one)
    train_part, val_part = split(data, validation)
    _check_ids(model, [p for p in (train_part, val_part) if p is not None])
    task = Arrays(train_part, val_part, standardize=standardize, dtype=model.dtype,
                  num_classes=model.head.out_features if data.y.dtype.kind == "i" else None,
                  vocab_size=None if model.embedding is None else model.embedding.num_embeddings)
    _check_fits(model, task, data)
    n = len(task.train.x)
    per_epoch = math.ceil(n / min(batch_size, n))
    steps = check_int("steps", steps) if steps is not None else per_epoch * check_int("epochs", epochs or 10)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, optimizer=optimizer,
                      weight_decay=weight_decay, clip=clip, lr_schedule=schedule,
                      eval_every=per_epoch if eval_every is None else eval_every, early_stop=False, patience=early_stop,
                      restore_best=restore_best, seed=seed, run_dir=run_dir, progress=progress,
                      log_every=100 if progress else 0, detect_anomaly=detect_anomaly)
    model.scaler, model.target = task.scaler, task.target_type
    resume_from = None
    if resume:
        if run_dir is None:
            raise ValueError("resume: say which run to continue with run_dir")
        resume_from = cfg.run_dir / "checkpoint.npz"
    return train(model, task, cfg, resume_from=resume_from)


def _check_ids(model, parts) -> None:
    """Class ids and token ids of the training and validation data against the model's head and Embedding."""
    for part, which in zip(parts, ("", " (validation)")):
        if part.y.dtype.kind == "i" and part.y.max() >= model.head.out_features:
            raise ValueError(f"y{which}: class ids up to {part.y.max()}, the model's head has "
                             f"{model.head.out_features} outputs")
        if model.embedding is not None and part.x.ndim == 2 and part.x.max() >= model.embedding.num_embeddings:
            raise ValueError(f"x{which}: token ids up to {part.x.max()}, the model's Embedding has "
                             f"{model.embedding.num_embeddings} rows")


def _check_fits(model, task: Arrays, data) -> None:
    """The model's shape against the data's, before anything trains: one line naming the mismatch."""
    if (model.embedding is not None) != hasattr(task, "vocab_size"):
        raise ValueError("x: token ids (B, T) need a model with an Embedding, and vectors (B, T, I) a model "
                         "without one" + (f"; got token ids and a model without an Embedding"
                                          if model.embedding is None else "; got vectors"))
    if model.embedding is not None and data.x.max() >= model.embedding.num_embeddings:
        raise ValueError(f"x: token ids up to {data.x.max()}, the model's Embedding has "
                         f"{model.embedding.num_embeddings} rows")
    if model.embedding is None and model.lstm.config.input_size != task.input_size:
        raise ValueError(f"x: {task.input_size} features per step, the model takes {model.lstm.config.input_size}")
    if model.many_to_one != task.many_to_one:
        raise ValueError("y: " + ("one target per sequence (many-to-one), but the model's head is per step"
                                  if task.many_to_one else "a target per step, but the model is many-to-one")
                         + "; build the Model with many_to_one=" + str(task.many_to_one))
    out = model.head.out_features
    if task.target_type == "classes" and data.y.max() >= out:
        raise ValueError(f"y: class ids up to {data.y.max()}, the model's head has {out} outputs")
    if task.target_type == "values" and task.output_size != out:
        raise ValueError(f"y: {task.output_size} values per target, the model's head has {out} outputs")
