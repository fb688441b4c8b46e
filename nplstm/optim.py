"""Optimizers: pure per-array update rules, and thin classes that apply them to a params dict.

Each rule takes (param, grad, state...) and returns the new param and state; the classes keep
the state per key and write the new values into the caller's arrays in place, so layers that
hold those arrays see the update. The rules follow PyTorch's definitions of SGD, Adam, RMSprop.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import anomaly
from ._checks import all_finite, check_array
from .errors import NonFiniteError, _first_bad


def sgd_rule(p, g, v, *, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    """v <- μ v + g;  p <- p - lr (g + μ v) with Nesterov, else p - lr v. Returns (p, v).

    p, g, v: arrays of one shape (v: the velocity, zeros at first); new arrays are returned.
    """
    if weight_decay:
        g = g + weight_decay * p
    v = momentum * v + g
    step = g + momentum * v if nesterov else v
    return p - lr * step, v


def adam_rule(p, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """Adam (Kingma & Ba 2015) at step t >= 1 with bias correction. Returns (p, m, v).

    p, g, m, v: arrays of one shape (m, v: the moments, zeros at first); new arrays are returned.
    """
    b1, b2 = betas
    if weight_decay:
        g = g + weight_decay * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def adamw_rule(p, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    """AdamW (Loshchilov & Hutter 2019): Adam's step on g alone, and the decay applied to p directly,
    p <- p - lr (m_hat / (sqrt(v_hat) + eps) + weight_decay p), not folded into g. Returns (p, m, v)."""
    new_p, m, v = adam_rule(p, g, m, v, t, lr=lr, betas=betas, eps=eps)
    return new_p - lr * weight_decay * p, m, v


def rmsprop_rule(p, g, v, *, lr, alpha=0.99, eps=1e-8):
    """v <- α v + (1 - α) g²;  p <- p - lr g / (sqrt(v) + eps). Returns (p, v).

    p, g, v: arrays of one shape (v: the mean of g², zeros at first); new arrays are returned.
    """
    v = alpha * v + (1 - alpha) * g * g
    return p - lr * g / (np.sqrt(v) + eps), v


# name -> (test, what is expected) for the optimizers' hyperparameters and max_norm; each must also be a
# finite real number. lr is checked again at every step, because the trainer reassigns it.
_HYPER = {
    "lr": (lambda x: x > 0, "a positive learning rate (finite, > 0)"),
    # PyTorch asks only momentum >= 0; at μ >= 1 the velocity Σ μ^k g never forgets a gradient and grows
    "momentum": (lambda x: 0 <= x < 1, "a number in [0, 1)"),
    "weight_decay": (lambda x: x >= 0, "a finite number >= 0"),
    "eps": (lambda x: x > 0, "a finite number > 0"),
    # at α = 1 the mean of g² stays 0 and every step is lr g / eps; at β = 1 Adam divides by 1 - β^t = 0
    "alpha": (lambda x: 0 <= x < 1, "a number in [0, 1)"),
    "beta": (lambda x: 0 <= x < 1, "a number in [0, 1)"),
    "max_norm": (lambda x: x > 0, "a positive number (finite, > 0), or math.inf for no clipping"),
}


def _check_hyper(name: str, value, label: str | None = None) -> None:
    test, expected = _HYPER[name]
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or not test(value)):
        raise ValueError(f"{label or name}: expected {expected}, got {value!r}")


def _check_finite(name: str, a, why: str = "", error=ValueError) -> None:
    """`error` (ValueError: a malformed input; NonFiniteError: arithmetic out of range) naming the first
    NaN or Inf of a, if any; one pass over a when there is none."""
    if not all_finite(a):
        idx = _first_bad(a)
        raise error(f"{name}: expected finite values, got {a[idx]} at index {list(idx)} "
                         f"({int((~np.isfinite(a)).sum())} of {a.size} entries are NaN or Inf){why}")


class Optimizer:
    """Applies `rule` to every key of a grads dict. `state` maps key -> tuple of arrays."""

    n_state = 1

    def __init__(self, lr: float, **hyper):
        for name, value in {"lr": lr, **hyper}.items():
            if name in _HYPER:
                _check_hyper(name, value)
        self.lr, self.hyper = lr, hyper
        self.state: dict[str, tuple] = {}
        self.t = 0  # updates taken so far

    def step(self, params: dict, grads: dict) -> None:
        """Update params[k] in place for every k in grads (same shapes and dtypes, finite grads).

        Every new value is computed and checked before any is written, so a step that raises (a bad
        key, shape, dtype, a read-only param, a NaN or Inf gradient or result) leaves params and the
        optimizer unchanged. Under detect_anomaly a non-finite gradient or result is an AnomalyError.
        """
        _check_hyper("lr", self.lr, "opt.lr")
        t = self.t + 1
        updates = [(key, *self._update(key, params, g, t)) for key, g in grads.items()]
        for key, p, new_p, new_state in updates:
            p[...] = new_p
            self.state[key] = new_state
        self.t = t

    def _update(self, key, params, g, t):
        """Check one (param, grad) pair and compute its update -> (p, new_p, new_state); writes nothing."""
        if key not in params:
            raise ValueError(f"grads: key {key!r} has no parameter")
        p = params[key]
        if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
            raise ValueError(f"params[{key!r}]: expected a floating-point numpy array, got "
                             f"{getattr(p, 'dtype', type(p).__name__)}")
        if not p.flags.writeable:
            raise ValueError(f"params[{key!r}]: expected a writeable array (updated in place), got a read-only one")
        check_array(f"grads[{key!r}]", g, p.shape, p.dtype)
        state = self.state.get(key) or tuple(np.zeros_like(p) for _ in range(self.n_state))
        for j, s in enumerate(state):
            check_array(f"optimizer state[{key!r}/{j}]", s, p.shape, p.dtype)
        detect = anomaly.is_enabled()
        if not detect:
            _check_finite(f"grads[{key!r}]", g)
        with np.errstate(over="ignore", invalid="ignore"):   # a non-finite result is checked below
            new_p, *new_state = self._apply(p, g, state, t)
        if detect:
            self._check(key, p, g, state, new_p, t)
        name = type(self).__name__
        if not all_finite(new_p):
            _check_finite(f"{name}: params[{key!r}] after the step", new_p,
                          " (it already was before the step)" if not all_finite(p) else
                          f" although the gradient is finite: lr {self.lr:g} is too large for it", NonFiniteError)
        for j, s in enumerate(new_state):
            _check_finite(f"{name}: optimizer state[{key!r}/{j}] after the step", s,
                          f" (the gradient, or its square, is beyond {p.dtype.name}'s range)", NonFiniteError)
        return p, new_p, tuple(new_state)

    def _check(self, key, p, g, state, new_p, t):
        """Anomaly mode: raise AnomalyError if g, p or new_p is not finite, with the step redone in float64."""
        def exact_step():
            wide = tuple(s.astype(np.float64) for s in state)
            return self._apply(p.astype(np.float64), g.astype(np.float64), wide, t)[0] - p
        anomaly.check_update(type(self).__name__, self.lr, key, p, new_p, g, exact_step)

    def _apply(self, p, g, state, t):
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the state as flat arrays: "t" (0-d int64) and "{key}/{j}", the j-th state array of key."""
        arrays = {"t": np.array(self.t, np.int64)}
        for key, state in self.state.items():
            arrays.update({f"{key}/{j}": a.copy() for j, a in enumerate(state)})
        return arrays

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the state from the arrays of `state_dict()` (copied; hyperparameters and lr are not stored)."""
        if "t" not in arrays:
            raise ValueError("optimizer state: missing the step count 't'")
        t = np.asarray(arrays["t"])
        if t.ndim != 0 or not np.issubdtype(t.dtype, np.integer) or t < 0:
            raise ValueError(f"optimizer state 't': expected an integer >= 0, got {arrays['t']!r}")
        state: dict[str, dict[int, np.ndarray]] = {}
        for name, a in arrays.items():
            if name == "t":
                continue
            key, _, j = name.rpartition("/")
            if not key or not j.isdigit():
                raise ValueError(f"optimizer state: expected 't' and names '{{key}}/{{j}}' (j = 0, 1, ...), got {name!r}")
            a = np.array(a)
            if not np.issubdtype(a.dtype, np.floating):
                raise ValueError(f"optimizer state[{name!r}]: expected a floating-point array, got dtype {a.dtype.name}")
            _check_finite(f"optimizer state[{name!r}]", a)
            state.setdefault(key, {})[int(j)] = a
        for key, parts in state.items():
            if sorted(parts) != list(range(self.n_state)):
                raise ValueError(f"optimizer state[{key!r}]: expected {self.n_state} arrays, got indices {sorted(parts)}")
        self.t = int(t)
        self.state = {key: tuple(parts[j] for j in range(self.n_state)) for key, parts in state.items()}


class SGD(Optimizer):
    """SGD with optional momentum and Nesterov momentum (sgd_rule); one velocity per array.

    step(params, grads): dicts of arrays, each grad of its param's shape; params updated in place.
    """

    def __init__(self, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
        if nesterov and not momentum > 0:           # PyTorch's rule: Nesterov without momentum is plain SGD
            raise ValueError(f"nesterov: expected momentum > 0 with Nesterov momentum, got momentum={momentum!r}")

    def _apply(self, p, g, state, t):
        return sgd_rule(p, g, *state, lr=self.lr, **self.hyper)


class Adam(Optimizer):
    """Adam with bias correction (adam_rule); two moment arrays per parameter, the step count in `t`.

    step(params, grads): dicts of arrays, each grad of its param's shape; params updated in place.
    """
    n_state = 2

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas: expected a pair (beta1, beta2), each in [0, 1), got {betas!r}")
        for j, beta in enumerate(betas):
            _check_hyper("beta", beta, f"betas[{j}]")
        super().__init__(lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)

    def _apply(self, p, g, state, t):
        return adam_rule(p, g, *state, t, lr=self.lr, **self.hyper)


class AdamW(Adam):
    """Adam with decoupled weight decay (adamw_rule), as torch.optim.AdamW (default weight_decay 0.01).

    step(params, grads): dicts of arrays, each grad of its param's shape; params updated in place.
    """

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _apply(self, p, g, state, t):
        return adamw_rule(p, g, *state, t, lr=self.lr, **self.hyper)


class RMSprop(Optimizer):
    """RMSprop as PyTorch defines it (rmsprop_rule); one running mean of g² per array.

    step(params, grads): dicts of arrays, each grad of its param's shape; params updated in place.
    """

    def __init__(self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8):
        super().__init__(lr, alpha=alpha, eps=eps)

    def _apply(self, p, g, state, t):
        return rmsprop_rule(p, g, *state, lr=self.lr, **self.hyper)


def clip_grad_norm(grads: dict, max_norm: float) -> float:
    """Scale all grads in place so their global L2 norm is at most max_norm; return the norm before.

    grads: name -> array, any shapes and float dtype; max_norm: finite and > 0, or math.inf for no
    clipping; returns a Python float. Like torch.nn.utils.clip_grad_norm_: the factor is
    max_norm / (norm + 1e-6), applied only if < 1. A non-finite norm leaves the grads untouched
    (scaling by it would turn every gradient into 0 or NaN): the caller sees it in the norm returned.
    """
    if max_norm != math.inf:
        _check_hyper("max_norm", max_norm)
    norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))
    if anomaly.is_enabled():
        anomaly.check_grad_norm(norm, grads)
    scale = max_norm / (norm + 1e-6)
    if math.isfinite(norm) and scale < 1:
        for key, g in grads.items():
            if not g.flags.writeable:
                raise ValueError(f"grads[{key!r}]: expected a writeable array (clipped in place), got a read-only one")
        for g in grads.values():
            g *= scale
    return norm
