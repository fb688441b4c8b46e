"""Using a trained Model on your own data: predict, evaluate, forecast, and the metrics they report.

NumPy only. The model's `scaler` (nplstm.data.Scaler, saved with it) is applied to the inputs and, for
regression, undone on the outputs, so every number here is in the data's own units. `model.target` says
what the head predicts: "classes" (integer targets, softmax cross-entropy) or "values" (float targets,
mean squared error); a Model built by hand has None and is taken as "values".
"""
from __future__ import annotations

import numpy as np

from ._checks import check_int, check_lengths
from .data import pad_sequences, prepare
from .grad import no_grad
from .losses import mse, softmax_cross_entropy
from .ops import softmax


def inputs(model, x, lengths=None):
    """x as the model takes it -> (x, lengths): a list of sequences is padded (lengths inferred),
    an array is checked; vectors are standardised with the model's scaler and cast to its dtype."""
    if isinstance(x, (list, tuple)):
        if lengths is not None:
            raise ValueError("lengths: a list of sequences carries its own lengths; pass lengths only with an array")
        x, lengths = pad_sequences(list(x))
    if not isinstance(x, np.ndarray):
        raise ValueError(f"x: expected an array (B, T, I) or a list of sequences, got {type(x).__name__}")
    if model.embedding is not None:
        if x.ndim != 2 or x.dtype.kind not in "iu":
            raise ValueError(f"x: this model embeds token ids: expected integers (B, T), got {x.dtype.name}{x.shape}")
    else:
        if x.ndim == 2 and model.lstm.config.input_size == 1:
            x = x[..., None]                 # (B, T) of one feature
        I = model.lstm.config.input_size
        if x.ndim != 3 or x.shape[-1] != I or x.dtype.kind not in "fiu":
            raise ValueError(f"x: expected numbers of shape (B, T, {I}), got {x.dtype.name}{x.shape}")
        x = x.astype(np.float64)
        if not np.isfinite(x).all():
            bad = np.argwhere(~np.isfinite(x))[0]
            raise ValueError(f"x: contains NaN or Inf (first at index {tuple(int(i) for i in bad)})")
        if model.scaler is not None:
            x = model.scaler.x(x)
        x = x.astype(model.dtype)
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x: expected at least one sequence of at least one step, got shape {x.shape}")
    return x, check_lengths(lengths, x.shape[0], x.shape[1])


def outputs(model, x, lengths=None, batch_size: int = 256) -> np.ndarray:
    """The head's raw outputs on prepared inputs (see `inputs`), at most batch_size sequences at once."""
    batch_size = check_int("batch_size", batch_size)
    n = x.shape[0]
    with no_grad():                          # inference: no cache for a backward
        return np.concatenate([model.forward(x[i:i + batch_size],
                                             None if lengths is None else lengths[i:i + batch_size])
                               for i in range(0, n, batch_size)])


def predict(model, x, lengths=None, *, batch_size: int = 256) -> np.ndarray:
    """Predictions in the data's own units. x: (B, T, I), token ids (B, T), or a list of sequences.

    Returns (B, O) for a many-to-one model, (B, T, O) per step (zeros past each length): values for
    regression, class probabilities (softmax) for classification (their argmax(-1) is the class).
    """
    x, lengths = inputs(model, x, lengths)
    out = outputs(model, x, lengths, batch_size).astype(np.float64)
    if getattr(model, "target", None) == "classes":
        out = softmax(out, axis=-1)
    elif model.scaler is not None:
        out = model.scaler.y_inverse(out)
    if not model.many_to_one and lengths is not None:
        out[np.arange(out.shape[1])[None, :] >= lengths[:, None]] = 0.0
    return out


def evaluate(model, x, y, lengths=None, *, mask=None, batch_size: int = 256) -> dict[str, float]:
    """Metrics of the model on (x, y), over the counted targets (per step: steps within each length and,
    if given, mask (B, T) True). Classification: loss (mean cross-entropy) and accuracy. Regression:
    loss (MSE on the standardised scale the model trained on), and mse, mae, r2 in the data's own units."""
    classes = getattr(model, "target", None) == "classes"
    if model.many_to_one and mask is not None:
        raise ValueError("mask: a many-to-one model has one target per sequence; a per-step mask does not apply")
    if not classes and isinstance(y, np.ndarray) and y.dtype.kind in "iu":
        y = y.astype(np.float64)             # integer values of a regression, not class ids
    data = prepare(x, y, lengths, mask, many_to_one=True if model.many_to_one else None)
    x, lengths = inputs(model, data.x, data.lengths)
    out = outputs(model, x, lengths, batch_size).astype(np.float64)
    y, counted = data.y, data.mask
    if classes:
        if y.dtype.kind != "i" or y.shape != out.shape[:-1]:
            raise ValueError(f"y: expected integer class ids of shape {out.shape[:-1]}, got {y.dtype.name}{y.shape}")
        if y.max() >= out.shape[-1]:
            raise ValueError(f"y: expected class ids in [0, {out.shape[-1]}), got values in [{y.min()}, {y.max()}]")
    elif y.shape != out.shape:
        raise ValueError(f"y: expected numbers of shape {out.shape}, got {y.dtype.name}{y.shape}")
    if classes:
        loss, _ = softmax_cross_entropy(out, y, counted)
        right = out.argmax(-1) == y
        return {"loss": float(loss), "accuracy": float(right.mean() if counted is None else right[counted].mean())}
    scaled = y if model.scaler is None else model.scaler.y(y)
    loss, _ = mse(out, scaled, counted)
    pred = out if model.scaler is None else model.scaler.y_inverse(out)
    return {"loss": float(loss), **regression_metrics(pred, y, counted)}


def regression_metrics(pred: np.ndarray, y: np.ndarray, counted=None) -> dict[str, float]:
    """mse, mae and r2 (1 - SSE / the sum of squares about the targets' mean), over the counted entries."""
    p, t = (pred, y) if counted is None else (pred[counted], y[counted])
    err = p - t
    total = ((t - t.mean(axis=0)) ** 2).sum()
    return {"mse": float((err ** 2).mean()), "mae": float(np.abs(err).mean()),
            "r2": float(1 - (err ** 2).sum() / total) if total > 0 else float("nan")}


def forecast(model, history, steps: int) -> np.ndarray:
    """Recursive multi-step forecast: predict the next value from `history`, append it, drop the oldest
    value, and repeat. history: (N,) or (N, F) in the data's own units, the last window the model reads.

    The model must map a window of F features to the next value of the same F (many-to-one, output_size
    == input_size: a series model with horizon 1). Returns (steps, F) (or (steps,) for a 1-D history).
    """
    steps = check_int("steps", steps)
    h = np.asarray(history, dtype=np.float64)
    flat = h.ndim == 1
    h = h[:, None] if flat else h
    I, O = model.lstm.config.input_size, model.head.out_features
    if not model.many_to_one or I != O or model.embedding is not None:
        raise ValueError(f"forecast: needs a many-to-one model whose output is its next input (output_size == "
                         f"input_size); this one maps {I} inputs to {O} outputs"
                         + ("" if model.many_to_one else " at every step"))
    if h.ndim != 2 or h.shape[1] != I or len(h) == 0:
        raise ValueError(f"history: expected shape (N, {I}) with N >= 1, got {h.shape}")
    window, out = h.copy(), []
    for _ in range(steps):
        nxt = predict(model, window[None])[0]          # (F,) in the data's units
        out.append(nxt)
        window = np.concatenate([window[1:], nxt[None]])
    out = np.array(out)
    return out[:, 0] if flat else out
