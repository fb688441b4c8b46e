"""Shared fixtures and helpers. In CI (CI=true) a skipped test fails the run: the torch oracle must run there.

The helpers are plain functions, imported as `from tests.conftest import rel_err, random_lstm, random_inputs`
(hypothesis draws many examples within one call of a test, which function-scoped fixtures do not allow).
"""
import os

import numpy as np
import pytest

import nplstm


@pytest.fixture
def torch():
    """PyTorch, imported lazily; skipped locally when missing, a failure in CI."""
    if os.environ.get("CI"):
        import torch
    else:
        torch = pytest.importorskip("torch")
    return torch


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") and skipped and exitstatus == 0:
        reporter.write_line(f"CI: {skipped} test(s) skipped; every test must run in CI", red=True)
        session.exitstatus = 1


def rel_err(a, b) -> float:
    """max |a - b| / max |b|: the normwise relative error of a against the reference b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = np.abs(b).max()
    return float(np.abs(a - b).max() / scale) if scale else float(np.abs(a).max())


def random_lstm(rng, I, H, *, num_layers=1, bidirectional=False, **variant):
    """A float64 LSTM with every parameter random (peepholes and biases included), so no term hides.
    variant: nplstm.LSTM's variant= and flags (peephole, forget_gate, coupled, ...)."""
    lstm = nplstm.LSTM(I, H, num_layers=num_layers, bidirectional=bidirectional, **variant,
                       dtype=np.float64, seed=int(rng.integers(1 << 30)))
    for k, v in lstm.params.items():
        lstm.params[k] = rng.normal(0, 0.5, v.shape)
    return lstm


def random_inputs(rng, lstm, B, T, ragged):
    """x (B, T, I), a random initial state (h_0, c_0), each (L·D, B, H), and lengths (B,) if ragged else None."""
    c = lstm.config
    LD = c.num_layers * c.num_directions
    x = rng.standard_normal((B, T, c.input_size))
    state = (rng.standard_normal((LD, B, c.hidden_size)), rng.standard_normal((LD, B, c.hidden_size)))
    lengths = rng.integers(1, T + 1, B) if ragged else None
    return x, state, lengths


def numeric_grad(loss, arrays, eps=1e-6):
    """Central differences (L(a + ε) - L(a - ε)) / 2ε of loss() for every element of every array."""
    grads = {}
    for name, a in arrays.items():
        grad = np.zeros_like(a)
        for k in np.ndindex(a.shape):
            saved = a[k]
            a[k] = saved + eps
            up = loss()
            a[k] = saved - eps
            down = loss()
            a[k] = saved
            grad[k] = (up - down) / (2 * eps)
        grads[name] = grad
    return grads
