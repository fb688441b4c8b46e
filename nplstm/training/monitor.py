"""What the trainer records about the inside of a run: gradient norm per parameter, gate saturation, cell size.

Pure functions of arrays; the trainer calls them and stores the results in history.json.
"""
from __future__ import annotations

import numpy as np

SATURATED = 0.95   # σ gates: saturated when s < 0.05 or s > 0.95 (σ' < 0.048); g: when |g| > 0.95 (tanh' < 0.098)


def grad_norms(grads: dict[str, np.ndarray]) -> dict[str, float]:
    """The L2 norm of each gradient, {key: ‖g‖}: their squares sum to the global norm squared."""
    return {key: float(np.sqrt(float(np.vdot(g, g)))) for key, g in grads.items()}


def gate_stats(internals: dict, lengths=None, forget_gate: bool = True) -> dict:
    """Gate saturation and cell-state size over the valid steps of one batch.

    internals: LSTM.internals(), {prefix: {"i", "f", "g", "o", "c", "h": (B, T, H)}};
    lengths: (B,) valid steps per row, or None for all T (padded steps are left out).
    Returns {"saturation": {prefix: {"i", "f", "g", "o": fraction of units saturated}},
             "cell": {prefix: {"max_abs": max |c_t|, "mean_abs": mean |c_t|}}}, Python floats.
    A σ gate is saturated below 1 - SATURATED or above SATURATED, g when |g| > SATURATED: there
    its derivative is under a tenth of its largest, and little gradient passes. Without a forget
    gate f ≡ 1 is not learned, and its saturation is None.
    """
    saturation, cell = {}, {}
    for prefix, series in internals.items():
        B, T, _ = series["c"].shape
        valid = np.ones((B, T), bool) if lengths is None else np.arange(T)[None, :] < np.asarray(lengths)[:, None]
        sat = {}
        for name in "ifgo":
            v = series[name][valid]          # (valid steps, H)
            if name == "f" and not forget_gate:
                sat[name] = None
            elif name == "g":
                sat[name] = float(np.mean(np.abs(v) > SATURATED))
            else:
                sat[name] = float(np.mean((v < 1 - SATURATED) | (v > SATURATED)))
        c = np.abs(series["c"][valid])
        saturation[prefix] = sat
        cell[prefix] = {"max_abs": float(c.max()), "mean_abs": float(c.mean())}
    return {"saturation": saturation, "cell": cell}
