"""The 1997 truncated rule (nplstm.truncated) against its own definition: finite differences of the
forward pass in which h_{t-1} (and, as Gers et al. 2002 train, the peepholes' cell state) enters the
pre-activations as a frozen constant; against BPTT where there is nothing to truncate; and the online
and the summed forms against each other."""
import numpy as np
import pytest

from nplstm import lstm_backward, lstm_forward
from nplstm.variants import VARIANTS, Variant
from nplstm.truncated import online_gradients, online_init, online_step, truncated_backward, truncated_gradients

B, I, H = 2, 2, 3
NAMES = ["vanilla", "NP", "NFG", "NIG", "NOG", "NIAF", "NOAF", "CIFG"]


def make(seed, variant: Variant, T):
    rng = np.random.default_rng(seed)
    params = {"W": rng.normal(0, 0.6, (I, 4 * H)), "R": rng.normal(0, 0.6, (H, 4 * H)), "b": rng.normal(0, 0.3, 4 * H)}
    if variant.peephole is not None:
        params.update({k: rng.normal(0, 0.6, H) for k in ("p_i", "p_f", "p_o")})
    x = rng.normal(0, 1, (B, T, I))
    h0, c0 = rng.normal(0, 0.5, (B, H)), rng.normal(0, 0.5, (B, H))
    G = rng.normal(0, 1, (B, T, H))        # the loss L = Σ G ⊙ h_t, so ∂L/∂h_t = G[:, t]
    return params, x, h0, c0, G


# --- an independent forward, written from the equations, with its inputs optionally frozen ----------------

def sig(a):
    return 1 / (1 + np.exp(-a))


def forward(params, x, h0, c0, v: Variant, frozen=None, peephole_error=False):
    """h (B, T, H), c (B, T, H). frozen: (h_bar, c_bar) of a first run, each (B, T+1, H): h_{t-1} in a_t is
    h_bar, and (unless peephole_error) the peepholes read c_bar: the graph the truncated rule differentiates."""
    W, R, b = params["W"], params["R"], params["b"]
    h, c, hs, cs = h0, c0, [], []
    for t in range(x.shape[1]):
        h_in = h if frozen is None else frozen[0][:, t]
        a = x[:, t] @ W + h_in @ R + b
        a_i, a_f, a_g, a_o = (a[:, k * H:(k + 1) * H] for k in range(4))
        if v.peephole is not None:
            c_seen = c if frozen is None or peephole_error else frozen[1][:, t]
            a_i, a_f = a_i + c_seen * params["p_i"], a_f + c_seen * params["p_f"]
        i = sig(a_i) if v.input_gate else 1.0
        f = 1 - i if v.coupled else sig(a_f) if v.forget_gate else 1.0
        g = np.tanh(a_g) if v.input_activation == "tanh" else a_g
        c = f * c + i * g
        if v.peephole is not None:
            a_o = a_o + (c if frozen is None or peephole_error else frozen[1][:, t + 1]) * params["p_o"]
        o = sig(a_o) if v.output_gate else 1.0
        h = o * (np.tanh(c) if v.output_activation == "tanh" else c)
        hs.append(h)
        cs.append(c)
    return np.stack(hs, 1), np.stack(cs, 1)


def truncated_by_differences(params, x, h0, c0, G, v, peephole_error, eps=1e-6):
    """Central differences of L = Σ G ⊙ h through the frozen forward, frozen at the unperturbed run."""
    h, c = forward(params, x, h0, c0, v)
    frozen = (np.concatenate([h0[:, None], h], 1), np.concatenate([c0[:, None], c], 1))
    grads = {}
    for name, value in params.items():
        grads[name] = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            old = value[idx]
            losses = []
            for step in (eps, -eps):
                value[idx] = old + step
                losses.append((G * forward(params, x, h0, c0, v, frozen, peephole_error)[0]).sum())
            value[idx] = old
            grads[name][idx] = (losses[0] - losses[1]) / (2 * eps)
    return grads


def bptt(params, x, h0, c0, G, v):
    p = None if v.peephole is None else (params["p_i"], params["p_f"], params["p_o"])
    T = x.shape[1]
    _, _, cache = lstm_forward(x.transpose(1, 0, 2).copy(), h0, c0, params["W"], params["R"], params["b"], p,
                               batch_sizes=(B,) * T, variant=v)
    zeros = np.zeros((B, H))
    return lstm_backward(G.transpose(1, 0, 2).copy(), zeros, zeros, cache, params["W"], params["R"], p)[3]


def assert_same(a, b, atol=1e-12):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-10, atol=atol, err_msg=k)


# --- (ii) the definition: finite differences of the truncated graph -----------------------------------------

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("T", [3, 5])
def test_equals_finite_differences_of_the_frozen_forward(name, T):
    v = VARIANTS[name]
    params, x, h0, c0, G = make(T, v, T)
    got = truncated_gradients(params, x, G, h0, c0, variant=v)
    assert_same(got, truncated_by_differences(params, x, h0, c0, G, v, peephole_error=False), atol=1e-7)


@pytest.mark.parametrize("T", [3, 4])
def test_with_peephole_error_only_h_is_frozen(T):
    """peephole_error=True: the stop-gradient sits on h_{t-1} alone; the peepholes carry error into c."""
    v = VARIANTS["vanilla"]
    params, x, h0, c0, G = make(10 + T, v, T)
    got = truncated_gradients(params, x, G, h0, c0, variant=v, peephole_error=True)
    assert_same(got, truncated_by_differences(params, x, h0, c0, G, v, peephole_error=True), atol=1e-7)
    paper = truncated_gradients(params, x, G, h0, c0, variant=v)
    assert np.abs(paper["W"] - got["W"]).max() > 1e-4        # the two definitions differ with peepholes


# --- (i), (iii): where there is nothing to truncate, it is BPTT ----------------------------------------------

@pytest.mark.parametrize("name,peephole_error", [("NP", False), ("vanilla", True), ("NFG", True), ("CIFG", True)])
def test_one_step_is_bptt(name, peephole_error):
    v = VARIANTS[name]
    params, x, h0, c0, G = make(1, v, 1)
    assert_same(truncated_gradients(params, x, G, h0, c0, variant=v, peephole_error=peephole_error),
                bptt(params, x, h0, c0, G, v))


def test_one_step_with_peepholes_drops_only_the_output_gates_peephole_path():
    v = VARIANTS["vanilla"]
    params, x, h0, c0, G = make(2, v, 1)
    gap = truncated_gradients(params, x, G, h0, c0, variant=v)["W"] - bptt(params, x, h0, c0, G, v)["W"]
    assert np.abs(gap).max() > 1e-4
    params["p_o"][:] = 0.0                                    # o_t = σ(a_o) no longer sees c_t
    assert_same(truncated_gradients(params, x, G, h0, c0, variant=v), bptt(params, x, h0, c0, G, v))


@pytest.mark.parametrize("v,peephole_error", [(VARIANTS["NP"], False), (Variant(None, forget_gate=False), False),
                                               (VARIANTS["NOAF"], True), (VARIANTS["vanilla"], True)])
def test_without_recurrent_weights_it_is_bptt(v, peephole_error):
    """R = 0: h_{t-1} reaches no pre-activation, so the truncation drops nothing, even dR (= Σ h_{t-1}ᵀ δa_t)."""
    params, x, h0, c0, G = make(3, v, 5)
    params["R"][:] = 0.0
    got = truncated_gradients(params, x, G, h0, c0, variant=v, peephole_error=peephole_error)
    assert_same(got, bptt(params, x, h0, c0, G, v))
    assert np.abs(got["R"]).max() > 1e-3                      # a real gradient, not zeros on both sides


def test_without_recurrent_weights_and_peepholes_at_zero_the_paper_rule_is_bptt():
    v = VARIANTS["vanilla"]
    params, x, h0, c0, G = make(4, v, 5)
    params["R"][:] = 0.0
    gap = truncated_gradients(params, x, G, h0, c0, variant=v)["b"] - bptt(params, x, h0, c0, G, v)["b"]
    assert np.abs(gap).max() > 1e-4                           # the peepholes' error is dropped
    for k in ("p_i", "p_f", "p_o"):
        params[k][:] = 0.0
    assert_same(truncated_gradients(params, x, G, h0, c0, variant=v), bptt(params, x, h0, c0, G, v))


# --- (iv) with recurrence it is not BPTT ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["NP", "vanilla"])
def test_with_recurrent_weights_it_differs_from_bptt(name):
    v = VARIANTS[name]
    params, x, h0, c0, G = make(5, v, 4)
    got, full = truncated_gradients(params, x, G, h0, c0, variant=v, peephole_error=True), bptt(params, x, h0, c0, G, v)
    for k in ("W", "R", "b"):
        assert np.abs(got[k] - full[k]).max() > 1e-3 * np.abs(full[k]).max(), k
    # the output gate's bias at the last step sees no recurrence in either: its share agrees, the sums do not
    assert np.abs(got["b"][3 * H:] - full["b"][3 * H:]).max() > 1e-6


# --- the online form ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,peephole_error", [("vanilla", False), ("vanilla", True), ("NP", False),
                                                 ("NFG", False), ("CIFG", False), ("NIAF", True)])
def test_online_steps_sum_to_the_sequence_gradient(name, peephole_error):
    """RTRL forward (traces) and the backward along the carousel are two orders of one sum."""
    v = VARIANTS[name]
    params, x, h0, c0, G = make(6, v, 5)
    traces, h, c, total = online_init(B, I, H, peephole=v.peephole), h0, c0, {}
    hs = []
    for t in range(x.shape[1]):
        h, c, step = online_step(x[:, t], h, c, traces, params, variant=v, peephole_error=peephole_error)
        traces = step.traces
        hs.append(h)
        for k, g in online_gradients(G[:, t], step, params).items():
            total[k] = total.get(k, 0) + g
    np.testing.assert_allclose(np.stack(hs, 1), forward(params, x, h0, c0, v)[0], atol=1e-12)
    assert_same(total, truncated_gradients(params, x, G, h0, c0, variant=v, peephole_error=peephole_error))


def test_online_gradient_of_one_step_is_that_steps_loss_alone():
    """The gradient after step t uses only ∂ℓ_t/∂h_t: with G zero but at t = 2 it is the summed rule's."""
    v = VARIANTS["vanilla"]
    params, x, h0, c0, G = make(7, v, 4)
    G[:, [0, 1, 3]] = 0.0
    traces, h, c = online_init(B, I, H), h0, c0
    for t in range(3):
        h, c, step = online_step(x[:, t], h, c, traces, params, variant=v)
        traces = step.traces
    assert_same(online_gradients(G[:, 2], step, params), truncated_gradients(params, x, G, h0, c0, variant=v))


def test_online_updates_learn_a_flip_flop():
    """Weights changed after every step, as in the papers: output 0.5 after a "set" input until a "reset"
    one. Between events only the carried traces link the output to the weights that stored the state."""
    rng = np.random.default_rng(0)
    v = VARIANTS["NP"]
    params = {"W": rng.normal(0, 0.3, (2, 4)), "R": rng.normal(0, 0.3, (1, 4)), "b": np.zeros(4)}
    event = rng.random(4000)
    x = np.stack([event < 0.1, (event >= 0.1) & (event < 0.2)], axis=1).astype(float)[None]   # (1, T, 2)
    target = np.zeros(4000)
    for t in range(1, 4000):
        target[t] = 0.5 if x[0, t, 0] else 0.0 if x[0, t, 1] else target[t - 1]
    h, c, traces, errors = np.zeros((1, 1)), np.zeros((1, 1)), online_init(1, 2, 1, peephole=None), []
    for t in range(4000):
        h, c, step = online_step(x[:, t], h, c, traces, params, variant=v)
        traces = step.traces
        err = h - target[t]                                   # ℓ_t = (h_t - target)² / 2
        errors.append(float(err[0, 0] ** 2))
        for k, g in online_gradients(err, step, params).items():
            params[k] -= 1.0 * g
    assert np.mean(errors[-500:]) < 0.1 * np.var(target)     # the constant guess has error var(target)


# --- errors ----------------------------------------------------------------------------------------------

def test_refuses_what_it_does_not_define():
    params, x, h0, c0, G = make(8, VARIANTS["vanilla"], 3)
    with pytest.raises(ValueError, match="peephole.*'diagonal' or None.*'full'"):
        truncated_gradients(params, x, G, variant=Variant(peephole="full"))
    with pytest.raises(ValueError, match="gate_recurrence"):
        truncated_gradients(params, x, G, variant=VARIANTS["FGR"])
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 3, 3\)"):
        truncated_gradients(params, x, G[:, :2])
    p = (params["p_i"], params["p_f"], params["p_o"])
    _, _, cache = lstm_forward(x.transpose(1, 0, 2).copy(), h0, c0, params["W"], params["R"], params["b"], p,
                               batch_sizes=(2, 2, 1))
    with pytest.raises(ValueError, match="every row to run all 3 steps"):
        truncated_backward(G.transpose(1, 0, 2).copy(), cache, p)
