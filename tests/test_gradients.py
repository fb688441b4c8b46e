"""Finite differences against the hand-written backward, over every configuration the LSTM has."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nplstm
from nplstm import lstm as lstm_core
from tests.conftest import random_inputs, random_lstm


configs = st.fixed_dictionaries({
    "peephole": st.sampled_from(["diagonal", "full", None]),
    "forget_gate": st.booleans(),
    "num_layers": st.integers(1, 2),
    "bidirectional": st.booleans(),
})


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs, B=st.integers(1, 3), T=st.integers(1, 4), I=st.integers(1, 3), H=st.integers(1, 3),
       ragged=st.booleans(), with_state=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_backward_matches_finite_differences(cfg, B, T, I, H, ragged, with_state, seed):
    rng = np.random.default_rng(seed)
    lstm = random_lstm(rng, I, H, **cfg)
    x, state, lengths = random_inputs(rng, lstm, B, T, ragged)
    report = nplstm.gradcheck(lstm, x, state if with_state else None, lengths=lengths, seed=seed)
    assert report.ok, f"\n{report}"
    # every parameter, x, h_0 and c_0 were compared, element by element
    assert len(report.errors) == len(lstm.params) + 1 + 2 * with_state
    assert sum(report.checked.values()) == sum(v.size for v in lstm.params.values()) + x.size + 2 * with_state * state[0].size


@pytest.mark.parametrize("peephole", ["diagonal", "full", None])
@pytest.mark.parametrize("forget_gate", [True, False])
def test_single_step_single_sequence(peephole, forget_gate):
    rng = np.random.default_rng(0)
    lstm = random_lstm(rng, 2, 3, peephole=peephole, forget_gate=forget_gate)
    x, state, _ = random_inputs(rng, lstm, 1, 1, False)
    report = nplstm.gradcheck(lstm, x, state)
    assert report.ok, f"\n{report}"


@pytest.mark.slow
def test_ragged_stacked_bidirectional_with_final_state_gradients():
    """The case with the most bookkeeping: lengths sorted internally, reverse starts at each length."""
    rng = np.random.default_rng(1)
    lstm = random_lstm(rng, 3, 4, num_layers=2, bidirectional=True, peephole="full")
    x, state, _ = random_inputs(rng, lstm, 4, 6, False)
    report = nplstm.gradcheck(lstm, x, state, lengths=np.array([2, 6, 1, 4]))
    assert report.ok, f"\n{report}"


def test_forget_gate_off_gives_zero_forget_block_gradients():
    rng = np.random.default_rng(2)
    lstm = random_lstm(rng, 2, 3, forget_gate=False)
    x, state, _ = random_inputs(rng, lstm, 2, 5, False)
    y, (h, c) = lstm.forward(x, state)
    lstm.backward(rng.standard_normal(y.shape), (rng.standard_normal(h.shape), rng.standard_normal(c.shape)))
    H = 3
    for key in ("l0.W", "l0.R"):
        assert np.all(lstm.grads[key][:, H:2 * H] == 0)
        assert np.any(lstm.grads[key][:, :H] != 0)
    assert np.all(lstm.grads["l0.b"][H:2 * H] == 0)
    assert np.all(lstm.grads["l0.p_f"] == 0)


def test_gradcheck_catches_a_wrong_backward(monkeypatch):
    """A backward that forgets the output gate's peephole into dc must fail the check."""
    original = lstm_core.lstm_backward

    def broken(dy, dh_n, dc_n, cache, W, R, p=None, **kwargs):
        p = (p[0], p[1], np.zeros_like(p[2]))    # drop the p_o term from dL/dc
        return original(dy, dh_n, dc_n, cache, W, R, p, **kwargs)

    monkeypatch.setattr(nplstm.stack, "lstm_backward", broken)
    rng = np.random.default_rng(3)
    lstm = random_lstm(rng, 2, 3)
    x, state, _ = random_inputs(rng, lstm, 2, 4, False)
    report = nplstm.gradcheck(lstm, x, state)
    assert not report.ok
    assert report.worst > 1e-3
    assert "FAIL" in str(report)


def test_gradcheck_refuses_float32():
    lstm = nplstm.LSTM(2, 3, seed=0)
    with pytest.raises(ValueError, match="float64"):
        nplstm.gradcheck(lstm, np.zeros((1, 2, 2), np.float32))


def test_gradcheck_samples_large_arrays():
    rng = np.random.default_rng(4)
    lstm = random_lstm(rng, 5, 6)
    x, _, _ = random_inputs(rng, lstm, 2, 3, False)
    report = nplstm.gradcheck(lstm, x, max_per_array=7)
    assert report.ok, f"\n{report}"
    assert max(report.checked.values()) == 7


@pytest.mark.slow
def test_linear_and_models():
    rng = np.random.default_rng(5)
    head = nplstm.Linear(4, 3, dtype=np.float64, seed=1)
    assert nplstm.gradcheck(head, rng.standard_normal((2, 5, 4))).ok
    for many_to_one, bidirectional in ((False, False), (True, False), (True, True)):
        lstm = random_lstm(rng, 3, 4, bidirectional=bidirectional, num_layers=2)
        model = nplstm.Model(lstm, nplstm.Linear(4 * (1 + bidirectional), 2, dtype=np.float64, seed=2),
                             many_to_one=many_to_one)
        x = rng.standard_normal((3, 5, 3))
        report = nplstm.gradcheck(model, x, lengths=np.array([5, 3, 1]))
        assert report.ok, f"\n{report}"
        assert len(report.errors) == len(model.params) + 1
