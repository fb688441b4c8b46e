"""Optimizers: pure per-array update rules, and thin classes that apply them to a params dict.

Each rule takes (param, grad, state...) and returns the new param and state; the classes keep
the state per key and write the new values into the caller's arrays in place, so layers that
hold those arrays see the update. The rules follow PyTorch's definitions of SGD, Adam, RMSprop.
"""
from __future__ import annotations

import numpy as np

from . import anomaly


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


def rmsprop_rule(p, g, v, *, lr, alpha=0.99, eps=1e-8):
    """v <- α v + (1 - α) g²;  p <- p - lr g / (sqrt(v) + eps). Returns (p, v).

    p, g, v: arrays of one shape (v: the mean of g², zeros at first); new arrays are returned.
    """
    v = alpha * v + (1 - alpha) * g * g
    return p - lr * g / (np.sqrt(v) + eps), v


class Optimizer:
    """Applies `rule` to every key of a grads dict. `state` maps key -> tuple of arrays."""

    n_state = 1

    def __init__(self, lr: float, **hyper):
        if not lr > 0:
            raise ValueError(f"lr: expected a positive learning rate, got {lr!r}")
        self.lr, self.hyper = lr, hyper
        self.state: dict[str, tuple] = {}
        self.t = 0  # updates taken so far

    def step(self, params: dict, grads: dict) -> None:
        """Update params[k] in place for every k in grads (same shapes required).

        Every new value is computed before any is written, so a step that raises (a bad key, or
        under detect_anomaly a non-finite result) leaves params and the optimizer unchanged.
        """
        self.t += 1
        detect = anomaly.is_enabled()
        updates = []
        for key, g in grads.items():
            if key not in params:
                self.t -= 1
                raise ValueError(f"grads: key {key!r} has no parameter")
            p = params[key]
            if g.shape != p.shape:
                self.t -= 1
                raise ValueError(f"grads[{key!r}]: expected shape {p.shape}, got {g.shape}")
            state = self.state.get(key) or tuple(np.zeros_like(p) for _ in range(self.n_state))
            new_p, *new_state = self._apply(p, g, state)
            if detect:
                self._check(key, p, g, state, new_p)
            updates.append((key, p, new_p, new_state))
        for key, p, new_p, new_state in updates:
            p[...] = new_p
            self.state[key] = tuple(new_state)

    def _check(self, key, p, g, state, new_p):
        """Anomaly mode: raise AnomalyError if new_p is not finite, with the step redone in float64."""
        def exact_step():
            wide = tuple(s.astype(np.float64) for s in state)
            return self._apply(p.astype(np.float64), g.astype(np.float64), wide)[0] - p
        try:
            anomaly.check_update(type(self).__name__, self.lr, key, p, new_p, g, exact_step)
        except anomaly.AnomalyError:
            self.t -= 1                      # the step did not happen
            raise

    def _apply(self, p, g, state):
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
        state: dict[str, dict[int, np.ndarray]] = {}
        for name, a in arrays.items():
            if name != "t":
                key, _, j = name.rpartition("/")
                state.setdefault(key, {})[int(j)] = np.array(a)
        for key, parts in state.items():
            if sorted(parts) != list(range(self.n_state)):
                raise ValueError(f"optimizer state[{key!r}]: expected {self.n_state} arrays, got indices {sorted(parts)}")
        self.t = int(arrays["t"])
        self.state = {key: tuple(parts[j] for j in range(self.n_state)) for key, parts in state.items()}


class SGD(Optimizer):
    """SGD with optional momentum and Nesterov momentum (sgd_rule); one velocity per array.

    step(params, grads): dicts of arrays, each grad of its param's shape; params updated in place.
    """

    def __init__(self, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)

    def _apply(self, p, g, state):
        return sgd_rule(p, g, *state, lr=self.lr, **self.hyper)


class Adam(Optimizer):
    """Adam with bias correction (adam_rule); two moment arrays per parameter, the step count in `t`.

    step(params, grads): dicts of arrays, each grad of its param's shape; params updated in place.
    """
    n_state = 2

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _apply(self, p, g, state):
        return adam_rule(p, g, *state, self.t, lr=self.lr, **self.hyper)


class RMSprop(Optimizer):
    """RMSprop as PyTorch defines it (rmsprop_rule); one running mean of g² per array.

    step(params, grads): dicts of arrays, each grad of its param's shape; params updated in place.
    """

    def __init__(self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8):
        super().__init__(lr, alpha=alpha, eps=eps)

    def _apply(self, p, g, state):
        return rmsprop_rule(p, g, *state, lr=self.lr, **self.hyper)


def clip_grad_norm(grads: dict, max_norm: float) -> float:
    """Scale all grads in place so their global L2 norm is at most max_norm; return the norm before.

    grads: name -> array, any shapes and float dtype; returns a Python float.
    Like torch.nn.utils.clip_grad_norm_: the factor is max_norm / (norm + 1e-6), applied only if < 1.
    """
    norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))
    if anomaly.is_enabled():
        anomaly.check_grad_norm(norm, grads)
    scale = max_norm / (norm + 1e-6)
    if scale < 1:
        for g in grads.values():
            g *= scale
    return norm
