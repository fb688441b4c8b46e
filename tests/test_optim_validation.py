"""Optimizers and clipping refuse bad input whole: a step that raises writes nothing."""
import math

import numpy as np
import pytest

import nplstm
from nplstm.optim import SGD, Adam, RMSprop, clip_grad_norm


def two_params(dtype=np.float32):
    return {"a": np.full((2, 3), 0.5, dtype), "b": np.ones(4, dtype)}


def grads_for(params, value=1.0):
    return {k: np.full_like(p, value) for k, p in params.items()}


def assert_untouched(opt, params, before, t, state):
    """params hold `before`, and the optimizer's t and state are as they were."""
    for key in params:
        np.testing.assert_array_equal(params[key], before[key])
    assert opt.t == t and opt.state.keys() == state.keys()
    for key, arrays in state.items():
        for a, b in zip(opt.state[key], arrays):
            np.testing.assert_array_equal(a, b)


def failing_step(opt, params, grads, match):
    """One good step first (so there is state to keep), then the bad one, which must change nothing."""
    opt.step(params, grads_for(params, 0.1))
    before = {k: v.copy() for k, v in params.items()}
    t, state = opt.t, {k: tuple(a.copy() for a in s) for k, s in opt.state.items()}
    with pytest.raises(ValueError, match=match):
        opt.step(params, grads)
    assert_untouched(opt, params, before, t, state)


@pytest.mark.parametrize("make", [lambda: Adam(1e-2), lambda: SGD(0.1, momentum=0.9), lambda: RMSprop(1e-2)])
def test_read_only_param_changes_nothing(make):
    params = two_params()
    grads = grads_for(params)
    opt = make()
    opt.step(params, grads_for(params, 0.1))
    params["b"].flags.writeable = False              # "a" comes first: today it is written before "b" fails
    before = {k: v.copy() for k, v in params.items()}
    t, state = opt.t, {k: tuple(a.copy() for a in s) for k, s in opt.state.items()}
    with pytest.raises(ValueError, match=r"params\['b'\]: expected a writeable array"):
        opt.step(params, grads)
    assert_untouched(opt, params, before, t, state)


def test_grad_dtype_must_equal_the_params():
    params = two_params(np.float32)
    grads = {"a": np.ones((2, 3), np.float32), "b": np.ones(4, np.float64)}
    failing_step(Adam(1e-2), params, grads, r"grads\['b'\]: expected dtype float32, got float64")


def test_nan_gradient_is_refused_naming_key_and_index():
    params = two_params()
    grads = grads_for(params)
    grads["b"][2] = np.nan
    failing_step(SGD(0.1), params, grads, r"grads\['b'\]: expected finite values, got nan at index \[2\]")


def test_update_that_overflows_is_refused_and_not_applied():
    params = two_params(np.float32)
    opt = SGD(1e38)                                   # lr g = 1e39 > float32's largest, 3.4e38
    before = {k: v.copy() for k, v in params.items()}
    with pytest.raises(nplstm.NonFiniteError, match=r"SGD: params\['a'\] after the step: expected finite values, got -inf"):
        opt.step(params, grads_for(params, 10.0))
    assert_untouched(opt, params, before, 0, {})


def test_adam_moment_that_overflows_is_refused():
    params = two_params(np.float32)
    opt = Adam(1e-2)                                  # (1 - β2) g² = 1e39 overflows float32, so v = inf while the
    before = {k: v.copy() for k, v in params.items()}  # new param stays finite: today v is stored
    with pytest.raises(nplstm.NonFiniteError, match=r"Adam: optimizer state\['a'/1\] after the step: expected finite"):
        opt.step(params, grads_for(params, 1e21))
    assert_untouched(opt, params, before, 0, {})


def test_detect_anomaly_still_reports_with_an_anomaly_error():
    """Kept working, not new: in anomaly mode the report comes first, for the gradient and for the result."""
    params = two_params(np.float32)
    before = {k: v.copy() for k, v in params.items()}
    opt = SGD(1e38)
    with nplstm.detect_anomaly(), pytest.raises(nplstm.AnomalyError) as info:
        opt.step(params, grads_for(params, 10.0))
    assert info.value.quantity == "a after the SGD step"
    grads = grads_for(params)
    grads["a"][1, 2] = np.inf
    with nplstm.detect_anomaly(), pytest.raises(nplstm.AnomalyError) as info:
        opt.step(params, grads)
    assert info.value.quantity == "the gradient of a given to SGD.step"
    assert_untouched(opt, params, before, 0, {})


def test_lr_assigned_later_is_checked_at_step():
    params = two_params()
    opt = Adam(1e-2)
    opt.lr = math.inf                                 # as the trainer does: opt.lr = lr_at(cfg, step)
    before = {k: v.copy() for k, v in params.items()}
    with pytest.raises(ValueError, match="opt.lr: expected a positive learning rate"):
        opt.step(params, grads_for(params))
    assert_untouched(opt, params, before, 0, {})


@pytest.mark.parametrize("cls,kwargs,name", [
    (Adam, dict(lr=math.inf), "lr"), (SGD, dict(lr=True), "lr"), (SGD, dict(lr="0.1"), "lr"),
    (SGD, dict(lr=0.1, momentum=-0.5), "momentum"), (SGD, dict(lr=0.1, momentum=1.0), "momentum"),
    (SGD, dict(lr=0.1, momentum=math.nan), "momentum"),
    (SGD, dict(lr=0.1, weight_decay=-1e-4), "weight_decay"), (Adam, dict(weight_decay=math.inf), "weight_decay"),
    (SGD, dict(lr=0.1, nesterov=True), "nesterov"),
    (Adam, dict(betas=(2, 2)), r"betas\[0\]"), (Adam, dict(betas=(0.9, 1.0)), r"betas\[1\]"),
    (Adam, dict(betas=(0.9, -0.1)), r"betas\[1\]"), (Adam, dict(betas=0.9), "betas"),
    (Adam, dict(betas=(0.9, 0.99, 0.999)), "betas"),
    (Adam, dict(eps=0.0), "eps"), (Adam, dict(eps=math.inf), "eps"), (RMSprop, dict(eps=-1e-8), "eps"),
    (RMSprop, dict(alpha=1.0), "alpha"), (RMSprop, dict(alpha=-0.1), "alpha"),
])
def test_bad_hyperparameter_is_refused_by_name(cls, kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}: expected .*, got"):
        cls(**kwargs)


@pytest.mark.parametrize("max_norm", [-1, 0.0, math.nan, -math.inf])
def test_clip_needs_a_positive_max_norm_or_inf(max_norm):
    grads = {"w": np.array([3.0, 4.0])}
    with pytest.raises(ValueError, match="max_norm: expected a positive number"):
        clip_grad_norm(grads, max_norm)               # today -1 flips the gradient's sign
    np.testing.assert_array_equal(grads["w"], [3.0, 4.0])
    assert clip_grad_norm(grads, math.inf) == 5.0     # inf: no clipping, as the trainer's `cfg.clip or inf`
    np.testing.assert_array_equal(grads["w"], [3.0, 4.0])


def test_clip_with_a_non_finite_norm_leaves_grads_untouched():
    grads = {"w": np.full(4, 1e20, np.float32)}       # finite, but the squares overflow float32
    assert clip_grad_norm(grads, 1.0) == math.inf     # today the grads are scaled by 1 / inf, to 0
    np.testing.assert_array_equal(grads["w"], np.float32(1e20))


@pytest.mark.parametrize("name,value,match", [
    ("t", np.array(1.5), "'t': expected an integer >= 0"),
    ("t", np.array(-1), "'t': expected an integer >= 0"),
    ("m", np.zeros(3), r"expected 't' and names '\{key\}/\{j\}'"),
    ("a/x", np.zeros(3), r"expected 't' and names '\{key\}/\{j\}'"),
    ("a/0", np.array(["x", "y"]), r"state\['a/0'\]: expected a floating-point array"),
    ("a/0", np.array([0.0, np.nan]), r"state\['a/0'\]: expected finite values, got nan at index \[1\]"),
])
def test_load_state_dict_refuses_malformed_arrays(name, value, match):
    opt = SGD(0.1)
    opt.step({"a": np.zeros(3)}, {"a": np.ones(3)})
    arrays = {**opt.state_dict(), name: value}
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(arrays)
    assert opt.t == 1
    np.testing.assert_array_equal(opt.state["a"][0], 1.0)
