"""The readable reference cell (nplstm/reference.py) against finite differences, and the fast engine
(nplstm/lstm.py) against the reference, for every variant."""
import ast
from pathlib import Path

import numpy as np
import pytest

from nplstm import lstm as engine
from nplstm import reference as ref
from tests.conftest import numeric_grad

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = [(peephole, forget_gate) for peephole in ("diagonal", "full", None) for forget_gate in (True, False)]
ids = lambda v: str(v)


def random_params(rng, I, H, peephole):
    """float64 params with every entry random (biases and peepholes included), so no term hides."""
    params = {"W": rng.normal(0, 0.5, (I, 4 * H)), "R": rng.normal(0, 0.5, (H, 4 * H)), "b": rng.normal(0, 0.5, 4 * H)}
    if peephole is not None:
        shape = (H,) if peephole == "diagonal" else (H, H)
        params.update({name: rng.normal(0, 0.5, shape) for name in ("p_i", "p_f", "p_o")})
    return params


def assert_close(ours, theirs, tol=1e-12):
    """|ours - theirs| <= tol * max |theirs|, elementwise: a normwise-relative bound.

    Both sides do the same float64 arithmetic in another order (the engine halves columns, fuses the
    bias into its GEMM, sums steps in one product), so they differ by rounding, ~1e-16 relative; 1e-12
    leaves room for that to grow over a few steps, while a wrong or missing term (a peephole reading
    c_{t-1} instead of c_t, a dropped carousel) moves entries by 1e-3 or more and fails. An array the
    reference makes exactly zero (p_f without a forget gate) must be exactly zero in the engine too.
    """
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=tol * np.abs(theirs).max())


@pytest.mark.parametrize("H", [5, 512])  # 512: the engine's recurrence switches to one GEMM per step (one_gemm)
@pytest.mark.parametrize("peephole,forget_gate", VARIANTS, ids=ids)
def test_engine_matches_reference(peephole, forget_gate, H):
    rng = np.random.default_rng(7)
    T, B, I = 6, 3, 4                        # all different (and from H), so a transposed product cannot pass
    params = random_params(rng, I, H, peephole)
    x = rng.standard_normal((T, B, I))
    h0, c0 = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    dy, dh_n, dc_n = rng.standard_normal((T, B, H)), rng.standard_normal((B, H)), rng.standard_normal((B, H))

    h_ref, c_ref, caches = ref.lstm_reference_forward(x, h0, c0, params, peephole=peephole, forget_gate=forget_gate)
    dx_ref, dh0_ref, dc0_ref, grads_ref = ref.lstm_reference_backward(dy, dh_n, dc_n, caches)

    W, R, b = params["W"], params["R"], params["b"]
    p = None if peephole is None else (params["p_i"], params["p_f"], params["p_o"])
    h, c, cache = engine.lstm_forward(x, h0, c0, W, R, b, p, batch_sizes=[B] * T, peephole=peephole,
                                      forget_gate=forget_gate)
    h, c = h.copy(), c.copy()                # lstm_backward must not be able to change what we compare
    dx, dh0, dc0, grads = engine.lstm_backward(dy, dh_n, dc_n, cache, W, R, p)

    assert set(grads) == set(grads_ref) == set(params)
    pairs = {"h": (h, h_ref), "c": (c, c_ref), "dx": (dx, dx_ref), "dh0": (dh0, dh0_ref), "dc0": (dc0, dc0_ref)}
    pairs.update({f"d{k}": (grads[k], grads_ref[k]) for k in grads_ref})
    for name, (ours, theirs) in pairs.items():
        assert ours.shape == theirs.shape, name
        assert_close(ours, theirs, tol=1e-12)


def assert_matches_numeric(analytic, numeric, tol=1e-7):
    """Per element |analytic - numeric| <= tol * max(|analytic|, |numeric|, 1): the truncation error of
    central differences at ε = 1e-6 is ~1e-12 and their rounding ~1e-10, far below a wrong derivative."""
    for name in numeric:
        err = np.abs(analytic[name] - numeric[name]) / np.maximum(np.maximum(abs(analytic[name]), abs(numeric[name])), 1)
        assert err.max() < tol, f"{name}: worst error {err.max():.2e}"


@pytest.mark.parametrize("peephole,forget_gate", VARIANTS, ids=ids)
def test_step_backward_matches_finite_differences(peephole, forget_gate):
    rng = np.random.default_rng(3)
    B, I, H = 2, 3, 4
    params = random_params(rng, I, H, peephole)
    x, h_prev, c_prev = rng.standard_normal((B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    wh, wc = rng.standard_normal((B, H)), rng.standard_normal((B, H))

    def loss():                              # L = <wh, h> + <wc, c>: both outputs of the step count
        h, c, _ = ref.lstm_step_forward(x, h_prev, c_prev, params, peephole=peephole, forget_gate=forget_gate)
        return np.sum(wh * h) + np.sum(wc * c)

    _, _, cache = ref.lstm_step_forward(x, h_prev, c_prev, params, peephole=peephole, forget_gate=forget_gate)
    dx, dh_prev, dc_prev, grads = ref.lstm_step_backward(wh, wc, cache)
    numeric = numeric_grad(loss, {"x": x, "h_prev": h_prev, "c_prev": c_prev, **params})
    assert_matches_numeric({"x": dx, "h_prev": dh_prev, "c_prev": dc_prev, **grads}, numeric)
    assert set(grads) == set(params)


@pytest.mark.parametrize("peephole,forget_gate", [("full", True), ("diagonal", False)], ids=ids)
def test_sequence_backward_matches_finite_differences(peephole, forget_gate):
    rng = np.random.default_rng(4)
    T, B, I, H = 3, 2, 2, 3
    params = random_params(rng, I, H, peephole)
    x, h0, c0 = rng.standard_normal((T, B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    wy, wh, wc = rng.standard_normal((T, B, H)), rng.standard_normal((B, H)), rng.standard_normal((B, H))

    def loss():                              # the outputs and both final states count
        h, c, _ = ref.lstm_reference_forward(x, h0, c0, params, peephole=peephole, forget_gate=forget_gate)
        return np.sum(wy * h[1:]) + np.sum(wh * h[-1]) + np.sum(wc * c[-1])

    _, _, caches = ref.lstm_reference_forward(x, h0, c0, params, peephole=peephole, forget_gate=forget_gate)
    dx, dh0, dc0, grads = ref.lstm_reference_backward(wy, wh, wc, caches)
    numeric = numeric_grad(loss, {"x": x, "h0": h0, "c0": c0, **params})
    assert_matches_numeric({"x": dx, "h0": dh0, "c0": dc0, **grads}, numeric)


@pytest.mark.parametrize("peephole", ["diagonal", "full", None])
def test_without_a_forget_gate_a_f_gets_exactly_zero_gradient(peephole):
    rng = np.random.default_rng(5)
    B, I, H = 2, 3, 4
    params = random_params(rng, I, H, peephole)
    x, h_prev, c_prev = rng.standard_normal((B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    _, c, cache = ref.lstm_step_forward(x, h_prev, c_prev, params, peephole=peephole, forget_gate=False)
    np.testing.assert_array_equal(cache.f, 1.0)
    np.testing.assert_allclose(c, c_prev + cache.i * cache.g, rtol=0, atol=1e-15)  # the carousel
    _, _, _, grads = ref.lstm_step_backward(rng.standard_normal((B, H)), rng.standard_normal((B, H)), cache)
    F = slice(H, 2 * H)                      # the f block along 4H
    assert not grads["W"][:, F].any() and not grads["R"][:, F].any() and not grads["b"][F].any()
    assert peephole is None or not grads["p_f"].any()
    assert grads["W"][:, :H].any()           # while the other blocks do learn


def test_an_unknown_peephole_is_a_value_error():
    rng = np.random.default_rng(0)
    params = random_params(rng, 2, 3, "diagonal")
    with pytest.raises(ValueError, match="peephole"):
        ref.lstm_step_forward(np.zeros((1, 2)), np.zeros((1, 3)), np.zeros((1, 3)), params, peephole="diag")


def test_the_reference_imports_numpy_alone():
    """A learner reads one file: nothing from the rest of nplstm, nothing third-party but NumPy."""
    tree = ast.parse((ROOT / "nplstm" / "reference.py").read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import from {node.module!r} on line {node.lineno}"
            imported.add(node.module.split(".")[0])
    assert imported - {"__future__", "typing"} == {"numpy"}, imported
