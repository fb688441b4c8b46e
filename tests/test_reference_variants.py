"""Greff et al.'s variants of the reference cell (nplstm/reference.py): finite differences through whole
sequences, exactly zero gradients for removed parts, each variant's defining equation, and the defaults
unchanged. (Greff, Srivastava, Koutník, Steunebrink & Schmidhuber 2017, "LSTM: A Search Space Odyssey".)"""
import numpy as np
import pytest

from nplstm import reference as ref
from tests.conftest import numeric_grad

BLOCK = {"i": 0, "f": 1, "g": 2, "o": 3}     # gate blocks along 4H
GATE = {"i": 0, "f": 1, "o": 2}              # gate blocks along 3H (R_gates, gates_prev)
# every variant with each peephole kind it can have (NP is the one without), then a few combinations
CASES = [(name, {**flags, "peephole": peephole}) for name, flags in ref.VARIANTS.items()
         for peephole in ((None,) if name == "NP" else ("diagonal", "full"))]
CASES += [("full+NFG", {"peephole": "full", "forget_gate": False}),
          ("NIG+NOAF", {"input_gate": False, "output_activation": "identity"}),
          ("FGR+CIFG", {"gate_recurrence": True, "coupled": True}),
          ("FGR+NIG+NOG", {"gate_recurrence": True, "input_gate": False, "output_gate": False}),
          ("FGR+NP+NIAF", {"gate_recurrence": True, "peephole": None, "input_activation": "identity"})]
case_ids = [f"{name}-{flags.get('peephole', 'diagonal')}" for name, flags in CASES]


def random_params(rng, I, H, peephole="diagonal", gate_recurrence=False):
    """float64 params with every entry random (biases, peepholes, R_gates included), so no term hides."""
    params = {"W": rng.normal(0, 0.5, (I, 4 * H)), "R": rng.normal(0, 0.5, (H, 4 * H)), "b": rng.normal(0, 0.5, 4 * H)}
    if peephole is not None:
        shape = (H,) if peephole == "diagonal" else (H, H)
        params.update({name: rng.normal(0, 0.5, shape) for name in ("p_i", "p_f", "p_o")})
    if gate_recurrence:
        params["R_gates"] = rng.normal(0, 0.5, (3 * H, 3 * H))
    return params


def worst_error(analytic, numeric):
    """max over arrays and elements of |analytic - numeric| / max(|analytic|, |numeric|, 1) -> (error, name).

    Central differences at ε = 1e-6 err by ~1e-10 (rounding), far below what a wrong derivative gives."""
    errors = {name: (np.abs(analytic[name] - numeric[name])
                     / np.maximum(np.maximum(abs(analytic[name]), abs(numeric[name])), 1)).max() for name in numeric}
    name = max(errors, key=errors.get)
    return errors[name], name


@pytest.mark.parametrize("name,flags", CASES, ids=case_ids)
def test_sequence_backward_matches_finite_differences(name, flags):
    rng = np.random.default_rng(11)
    T, B, I, H = 4, 2, 3, 2                  # T ≥ 3, so the gates of step 1 reach step 3 under FGR
    params = random_params(rng, I, H, flags.get("peephole", "diagonal"), flags.get("gate_recurrence", False))
    x, h0, c0 = rng.standard_normal((T, B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    wy, wh, wc = rng.standard_normal((T, B, H)), rng.standard_normal((B, H)), rng.standard_normal((B, H))

    def loss():                              # the outputs and both final states count
        h, c, _ = ref.lstm_reference_forward(x, h0, c0, params, **flags)
        return np.sum(wy * h[1:]) + np.sum(wh * h[-1]) + np.sum(wc * c[-1])

    _, _, caches = ref.lstm_reference_forward(x, h0, c0, params, **flags)
    dx, dh0, dc0, grads = ref.lstm_reference_backward(wy, wh, wc, caches)
    assert set(grads) == set(params)
    numeric = numeric_grad(loss, {"x": x, "h0": h0, "c0": c0, **params})
    error, where = worst_error({"x": dx, "h0": dh0, "c0": dc0, **grads}, numeric)
    assert error < 1e-6, f"{name}: worst error {error:.2e} in d{where}"


def test_one_fgr_step_backpropagates_into_the_previous_gates():
    """lstm_step_backward's dgates_next and dgates_prev, checked on their own."""
    rng = np.random.default_rng(12)
    B, I, H = 2, 3, 2
    params = random_params(rng, I, H, "full", gate_recurrence=True)
    x, h_prev, c_prev = rng.standard_normal((B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    gates_prev = rng.uniform(0, 1, (B, 3 * H))
    wh, wc, wg = rng.standard_normal((B, H)), rng.standard_normal((B, H)), rng.standard_normal((B, 3 * H))

    def loss():                              # L = <wh, h> + <wc, c> + <wg, [i, f, o]>: the gates feed step t+1
        h, c, cache = ref.lstm_step_forward(x, h_prev, c_prev, params, peephole="full", gate_recurrence=True,
                                            gates_prev=gates_prev)
        return np.sum(wh * h) + np.sum(wc * c) + np.sum(wg * np.concatenate([cache.i, cache.f, cache.o], axis=1))

    _, _, cache = ref.lstm_step_forward(x, h_prev, c_prev, params, peephole="full", gate_recurrence=True,
                                        gates_prev=gates_prev)
    dx, dh_prev, dc_prev, dgates_prev, grads = ref.lstm_step_backward(wh, wc, cache, wg)
    numeric = numeric_grad(loss, {"x": x, "h_prev": h_prev, "c_prev": c_prev, "gates_prev": gates_prev, **params})
    analytic = {"x": dx, "h_prev": dh_prev, "c_prev": dc_prev, "gates_prev": dgates_prev, **grads}
    error, where = worst_error(analytic, numeric)
    assert error < 1e-6, f"worst error {error:.2e} in d{where}"


def test_fgr_has_no_previous_gates_at_the_first_step():
    rng = np.random.default_rng(13)
    B, I, H = 2, 3, 2
    params = random_params(rng, I, H, gate_recurrence=True)
    x, h0, c0 = rng.standard_normal((1, B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    h, c, caches = ref.lstm_reference_forward(x, h0, c0, params, gate_recurrence=True)
    np.testing.assert_array_equal(caches[0].gates_prev, 0.0)
    h_without, _, _ = ref.lstm_reference_forward(x, h0, c0, params)   # R_gates times zeros adds nothing
    np.testing.assert_allclose(h, h_without, rtol=0, atol=1e-15)
    *_, grads = ref.lstm_reference_backward(np.ones((1, B, H)), h0, c0, caches)
    assert not grads["R_gates"].any()        # one step: nothing came before it


# variant -> the gates whose blocks (in W, R, b, p_ and the R_gates columns) must get exactly zero gradient
REMOVED = [("NIG", {"input_gate": False}, "i"), ("NFG", {"forget_gate": False}, "f"),
           ("NOG", {"output_gate": False}, "o"), ("CIFG", {"coupled": True}, "f"),
           ("FGR+NIG+NOG", {"input_gate": False, "output_gate": False}, "io")]


@pytest.mark.parametrize("peephole", ["diagonal", "full"])
@pytest.mark.parametrize("name,flags,removed", REMOVED, ids=[r[0] for r in REMOVED])
def test_removed_parts_get_exactly_zero_gradient(name, flags, removed, peephole):
    rng = np.random.default_rng(14)
    T, B, I, H = 3, 2, 3, 4
    params = random_params(rng, I, H, peephole, gate_recurrence=True)
    x, h0, c0 = rng.standard_normal((T, B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    _, _, caches = ref.lstm_reference_forward(x, h0, c0, params, peephole=peephole, gate_recurrence=True, **flags)
    _, _, _, grads = ref.lstm_reference_backward(rng.standard_normal((T, B, H)), h0, c0, caches)
    for gate in "ifgo":
        block = slice(BLOCK[gate] * H, (BLOCK[gate] + 1) * H)
        zero = gate in removed
        for d in (grads["W"][:, block], grads["R"][:, block], grads["b"][block]):
            assert d.any() != zero, f"{name}: d{gate} block {'not zero' if zero else 'all zero'}"
        if gate != "g":
            assert grads[f"p_{gate}"].any() != zero, f"{name}: dp_{gate}"
            columns = slice(GATE[gate] * H, (GATE[gate] + 1) * H)
            assert grads["R_gates"][:, columns].any() != zero, f"{name}: dR_gates columns of {gate}"
            if zero:                         # yet a removed gate's constant 1 (CIFG: 1 - i) still feeds R_gates
                assert grads["R_gates"][columns].any(), f"{name}: dR_gates rows of {gate}"


def hand_a(x, h_prev, params, gate):
    """The gate's block of x W + h_prev R + b, written out again for the one-liners below."""
    H = h_prev.shape[1]
    block = slice(BLOCK[gate] * H, (BLOCK[gate] + 1) * H)
    return x @ params["W"][:, block] + h_prev @ params["R"][:, block] + params["b"][block]


def test_each_variant_computes_its_defining_equation():
    rng = np.random.default_rng(15)
    B, I, H = 3, 4, 5
    params = random_params(rng, I, H, "diagonal", gate_recurrence=True)
    x, h_prev, c_prev = rng.standard_normal((B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    gates_prev = rng.uniform(0, 1, (B, 3 * H))

    def step(name):
        h, c, cache = ref.lstm_step_forward(x, h_prev, c_prev, params, gates_prev=gates_prev, **ref.variant(name))
        return h, c, cache

    def close(ours, theirs):
        np.testing.assert_allclose(ours, theirs, rtol=1e-14, atol=1e-15)

    sigmoid = lambda a: 1 / (1 + np.exp(-a))
    p_i, p_f, p_o = params["p_i"], params["p_f"], params["p_o"]
    i = sigmoid(hand_a(x, h_prev, params, "i") + c_prev * p_i)   # the vanilla step, from the equations
    f = sigmoid(hand_a(x, h_prev, params, "f") + c_prev * p_f)
    g = np.tanh(hand_a(x, h_prev, params, "g"))
    c = f * c_prev + i * g
    o = sigmoid(hand_a(x, h_prev, params, "o") + c * p_o)
    h, c_ours, cache = step("vanilla")
    close(c_ours, c), close(h, o * np.tanh(c))

    h, c, cache = step("NIG")
    np.testing.assert_array_equal(cache.i, 1.0), close(c, cache.f * c_prev + cache.g)
    h, c, cache = step("NFG")
    np.testing.assert_array_equal(cache.f, 1.0), close(c, c_prev + cache.i * cache.g)
    h, c, cache = step("NOG")
    np.testing.assert_array_equal(cache.o, 1.0), close(h, np.tanh(c))
    h, c, cache = step("NIAF")
    close(cache.g, hand_a(x, h_prev, params, "g"))
    h, c, cache = step("NOAF")
    close(h, cache.o * c)
    h, c, cache = step("NP")
    close(cache.o, sigmoid(hand_a(x, h_prev, params, "o")))
    h, c, cache = step("CIFG")
    np.testing.assert_array_equal(cache.f, 1 - cache.i), close(c, (1 - cache.i) * c_prev + cache.i * cache.g)
    h, c, cache = step("FGR")
    a_gates = gates_prev @ params["R_gates"]                     # columns a_i, a_f, a_o
    close(cache.i, sigmoid(hand_a(x, h_prev, params, "i") + a_gates[:, :H] + c_prev * p_i))
    close(cache.o, sigmoid(hand_a(x, h_prev, params, "o") + a_gates[:, 2 * H:] + c * p_o))


def test_the_defaults_are_the_vanilla_lstm_bit_for_bit():
    rng = np.random.default_rng(16)
    T, B, I, H = 4, 3, 2, 3
    for peephole, forget_gate in [("diagonal", True), ("full", True), (None, True), ("diagonal", False)]:
        params = random_params(rng, I, H, peephole)
        x, h0, c0 = rng.standard_normal((T, B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
        dy = rng.standard_normal((T, B, H))
        old = {"peephole": peephole, "forget_gate": forget_gate}   # how tests/test_reference.py calls it
        explicit = {**ref.VARIANTS["vanilla"], **old}
        runs = []
        for flags in (old, explicit):
            h, c, caches = ref.lstm_reference_forward(x, h0, c0, params, **flags)
            assert all(cache.gates_prev is None for cache in caches)
            dx, dh0, dc0, grads = ref.lstm_reference_backward(dy, h0, c0, caches)
            runs.append([h, c, dx, dh0, dc0, *(grads[k] for k in sorted(params))])
            assert set(grads) == set(params)   # no R_gates without gate recurrence
        for ours, theirs in zip(*runs):
            np.testing.assert_array_equal(ours, theirs)
        assert len(ref.lstm_step_backward(dy[0], dy[1], caches[0])) == 4   # dx, dh_prev, dc_prev, grads


def test_variants_change_one_thing_each():
    vanilla = ref.VARIANTS["vanilla"]
    assert vanilla == ref.Variant()._asdict()
    assert vanilla["peephole"] == "diagonal" and vanilla["forget_gate"] and not vanilla["coupled"]
    assert set(ref.VARIANTS) == {"vanilla", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR"}
    for name, flags in ref.VARIANTS.items():
        assert set(flags) == set(vanilla), name
        changed = [k for k in flags if flags[k] != vanilla[k]]
        assert len(changed) == (name != "vanilla"), (name, changed)
    flags = ref.variant("CIFG")
    flags["coupled"] = False                 # variant() hands out a copy
    assert ref.VARIANTS["CIFG"]["coupled"]


@pytest.mark.parametrize("flags,match", [
    ({"coupled": True, "input_gate": False}, "coupled"),
    ({"coupled": True, "forget_gate": False}, "coupled"),
    ({"input_activation": "relu"}, "input_activation"),
    ({"output_activation": "sigmoid"}, "output_activation"),
    ({"peephole": "diag"}, "peephole"),
])
def test_flags_that_name_no_variant_are_value_errors(flags, match):
    rng = np.random.default_rng(0)
    params = random_params(rng, 2, 3)
    with pytest.raises(ValueError, match=match):
        ref.lstm_step_forward(np.zeros((1, 2)), np.zeros((1, 3)), np.zeros((1, 3)), params, **flags)
    with pytest.raises(ValueError, match=match):
        ref.lstm_reference_forward(np.zeros((2, 1, 2)), np.zeros((1, 3)), np.zeros((1, 3)), params, **flags)


def test_an_unknown_variant_name_is_a_value_error():
    with pytest.raises(ValueError, match="variant: expected one of vanilla, NIG.*got 'LSTM'"):
        ref.variant("LSTM")
