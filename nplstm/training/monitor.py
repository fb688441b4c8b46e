"""What the trainer records about the inside of a run: gradient norm per parameter, gate saturation, cell size.

Pure functions of arrays; the trainer calls them and stores the results in history.json.
"""
from __future__ import annotations

import numpy as np

from ..variants import VANILLA

SATURATED = 0.95   # σ gates: saturated when s < 0.05 or s > 0.95 (σ' < 0.048); g: when |g| > 0.95 (tanh' < 0.098)
SIGMOID, TANH = "ifozr", "gn"   # the LSTM's i, f, o and the GRU's z, r are σ; g and the GRU's candidate n are tanh


def grad_norms(grads: dict[str, np.ndarray]) -> dict[str, float]:
    """The L2 norm of each gradient, {key: ‖g‖}: their squares sum to the global norm squared."""
    return {key: float(np.sqrt(float(np.vdot(g, g)))) for key, g in grads.items()}


def gate_stats(internals: dict, lengths=None, variant=None) -> dict:
    """Gate saturation and cell-state size over the valid steps of one batch.

    internals: LSTM.internals(), {prefix: {"i", "f", "g", "o", "c", "h": (B, T, H)}}, or GRU.internals(),
    {prefix: {"r", "z", "n", "h"}}; lengths: (B,) valid steps per row, or None for all T (padded steps are left out).
    Returns {"saturation": {prefix: {"i", "f", "g", "o" (a GRU: "r", "z", "n"): fraction of units saturated}},
             "cell": {prefix: {"max_abs": max |c_t|, "mean_abs": mean |c_t|}}} (a GRU, with no cell: no "cell"),
    Python floats. A σ gate is saturated below 1 - SATURATED or above SATURATED, g and n when |·| > SATURATED: there
    its derivative is under a tenth of its largest, and little gradient passes. variant: the
    LSTM's nplstm.variants.Variant (None: vanilla); a gate it does not learn (f ≡ 1 without a forget
    gate or f = 1 - i when coupled, i ≡ 1, o ≡ 1) has saturation None, and so has g = a_g (NIAF).
    """
    v = VANILLA if variant is None else variant
    unlearned = {name for name, learned in (("i", v.input_gate), ("f", v.forget_gate and not v.coupled),
                                            ("o", v.output_gate), ("g", v.input_activation == "tanh")) if not learned}
    saturation, cell = {}, {}
    for prefix, series in internals.items():
        B, T, _ = series["h"].shape
        valid = np.ones((B, T), bool) if lengths is None else np.arange(T)[None, :] < np.asarray(lengths)[:, None]
        sat = {}
        for name in (n for n in series if n in SIGMOID + TANH):
            v = series[name][valid]          # (valid steps, H)
            if name in unlearned:
                sat[name] = None
            elif name in TANH:
                sat[name] = float(np.mean(np.abs(v) > SATURATED))
            else:
                sat[name] = float(np.mean((v < 1 - SATURATED) | (v > SATURATED)))
        saturation[prefix] = sat
        if "c" in series:
            c = np.abs(series["c"][valid])
            cell[prefix] = {"max_abs": float(c.max()), "mean_abs": float(c.mean())}
    return {"saturation": saturation, **({"cell": cell} if cell else {})}
