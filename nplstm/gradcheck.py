"""Check any layer's backward against central finite differences, in float64.

A layer here is anything with `params` (dict of arrays), `grads` (filled by backward),
`forward(*inputs, **kwargs)` and `backward(*cotangents)`, where backward takes one gradient
per output in the output's own structure (LSTM: `backward(dy, (dh_n, dc_n))`) and returns
the gradients of the inputs in theirs. LSTM, Linear and Model all qualify.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class GradcheckReport:
    """Worst relative error per checked array; `ok` when every one is below `tol`."""
    errors: dict[str, float] = field(default_factory=dict)
    checked: dict[str, int] = field(default_factory=dict)  # elements compared per array
    tol: float = 1e-6

    @property
    def worst(self) -> float:
        """The largest relative error over all checked arrays (0.0 if none)."""
        return max(self.errors.values(), default=0.0)

    @property
    def worst_name(self) -> str | None:
        """The name of the array with the largest error, e.g. "params['l0.W']" (None if none)."""
        return max(self.errors, key=self.errors.get, default=None)

    @property
    def ok(self) -> bool:
        """True when every checked array's worst error is below `tol`."""
        return self.worst < self.tol

    def __str__(self) -> str:
        rows = [f"{'array':<24} {'elements':>8}  worst rel. error"]
        rows += [f"{k:<24} {self.checked[k]:>8}  {v:.2e}{'  <-- FAIL' if v >= self.tol else ''}"
                 for k, v in self.errors.items()]
        rows.append(f"worst: {self.worst:.2e} at {self.worst_name} (tolerance {self.tol:g}): "
                    f"{'OK' if self.ok else 'FAIL'}")
        return "\n".join(rows)


def gradcheck(layer, *inputs, eps: float = 1e-3, tol: float = 1e-6, floor: float = 1e-6,
              max_per_array: int | None = None, seed: int = 0, **forward_kwargs) -> GradcheckReport:
    """Compare layer.backward with finite differences for every parameter and input array.

    inputs: the differentiable positional arguments of forward (arrays, tuples of arrays, or None);
    forward_kwargs: the rest (e.g. lengths=...). All arrays must be float64.
    The scalar checked is L = Σ <w, output> over every output array with fixed random weights w,
    so each output and final state contributes. The numeric derivative is the five-point central
    difference (-L(+2ε) + 8 L(+ε) - 8 L(-ε) + L(-2ε)) / 12ε, whose truncation error O(ε⁴) lets ε be
    large enough (1e-3) that rounding noise in L stays near 1e-12. Per element the error is
    |analytic - numeric| / max(|analytic|, |numeric|, floor): relative, except for entries so
    small (below `floor`) that finite differences in float64 cannot resolve them relatively.
    max_per_array: check at most this many randomly chosen elements of each array (None: all).
    """
    rng = np.random.default_rng(seed)
    leaves = dict(_leaves(inputs, "inputs"))
    named = {**{f"params[{k!r}]": v for k, v in layer.params.items()}, **leaves}
    for name, a in named.items():
        if a.dtype != np.float64:
            raise ValueError(f"gradcheck: {name} has dtype {a.dtype.name}; finite differences need float64 "
                             "(build the layer and its inputs with dtype=np.float64)")

    out = layer.forward(*inputs, **forward_kwargs)
    weights = _map(lambda a: rng.standard_normal(a.shape), out)

    def loss() -> float:
        return sum(float(np.vdot(w, o)) for (_, w), (_, o) in
                   zip(_leaves(weights), _leaves(layer.forward(*inputs, **forward_kwargs))))

    dinputs = layer.backward(*weights) if isinstance(out, tuple) else layer.backward(weights)
    if len(inputs) == 1:                     # backward may return more than asked (LSTM's dstate)
        dinputs = (dinputs[0] if isinstance(dinputs, tuple) else dinputs,)
    analytic = {f"params[{k!r}]": np.array(g) for k, g in layer.grads.items()}
    analytic.update((name, np.array(g)) for name, g in _leaves(dinputs, "inputs"))

    report = GradcheckReport(tol=tol)
    for name, a in named.items():
        if name not in analytic:
            raise ValueError(f"gradcheck: backward gave no gradient for {name}")
        idx = np.arange(a.size)
        if max_per_array is not None and a.size > max_per_array:
            idx = rng.choice(a.size, max_per_array, replace=False)
        flat = a.reshape(-1)                 # a view: perturbing it perturbs the layer's array
        numeric = np.empty(len(idx))
        for n, j in enumerate(idx):
            old = flat[j]
            f = []
            for step in (2 * eps, eps, -eps, -2 * eps):
                flat[j] = old + step
                f.append(loss())
            flat[j] = old
            # fourth-order central difference: truncation error O(eps^4) instead of O(eps^2)
            numeric[n] = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * eps)
        exact = analytic[name].reshape(-1)[idx]
        scale = np.maximum(np.maximum(np.abs(exact), np.abs(numeric)), floor)
        report.errors[name] = float((np.abs(exact - numeric) / scale).max(initial=0.0))
        report.checked[name] = len(idx)
    layer.forward(*inputs, **forward_kwargs)  # leave the layer's cache as the caller's forward left it
    return report


def _leaves(tree, path=""):
    """(path, array) pairs of a nested tuple/list of arrays; None entries are skipped."""
    if tree is None:
        return
    if isinstance(tree, (tuple, list)):
        for k, sub in enumerate(tree):
            yield from _leaves(sub, f"{path}[{k}]")
    else:
        yield path, tree


def _map(fn, tree):
    if isinstance(tree, (tuple, list)):
        return tuple(_map(fn, sub) for sub in tree)
    return fn(tree)
