"""Greff et al.'s (2017) LSTM variants in the engine: each one argument away, each exact.

Names: vanilla (forget gate, diagonal peepholes), NIG/NFG/NOG (no input/forget/output gate),
NIAF/NOAF (identity input/output activation), NP (no peepholes), CIFG (f = 1 - i), FGR (gate recurrence).
"""
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nplstm
from nplstm.variants import VANILLA, VARIANTS
from nplstm.tasks import make_task
from nplstm.training.checkpoint import load_model, model_config, save_model
from nplstm.training.trainer import build_model
from tests.conftest import random_inputs, random_lstm

NAMES = list(VARIANTS)


@pytest.mark.parametrize("name", NAMES)
def test_every_variant_builds_and_passes_gradcheck(name):
    lstm = nplstm.LSTM(3, 8, variant=name, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    report = nplstm.gradcheck(lstm, x, None)
    assert report.ok, f"\n{report}"
    changed = {k for k, v in VARIANTS[name]._asdict().items() if v != getattr(VANILLA, k)}
    assert len(changed) == (name != "vanilla")        # each changes exactly one part of the vanilla LSTM


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(NAMES), peephole=st.sampled_from(["diagonal", "full", None]),
       num_layers=st.integers(1, 2), bidirectional=st.booleans(), B=st.integers(1, 3), T=st.integers(1, 4),
       H=st.integers(1, 3), ragged=st.booleans(), with_state=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_variants_match_finite_differences(name, peephole, num_layers, bidirectional, B, T, H, ragged, with_state,
                                           seed):
    """Every variant × peephole kind × layers × directions × ragged lengths × initial state."""
    rng = np.random.default_rng(seed)
    lstm = random_lstm(rng, 2, H, num_layers=num_layers, bidirectional=bidirectional, variant=name,
                       peephole=peephole)
    x, state, lengths = random_inputs(rng, lstm, B, T, ragged)
    report = nplstm.gradcheck(lstm, x, state if with_state else None, lengths=lengths, seed=seed)
    assert report.ok, f"\n{report}"
    assert len(report.errors) == len(lstm.params) + 1 + 2 * with_state


@pytest.mark.parametrize("name,blocks,peepholes", [
    ("NIG", [0], ["p_i"]), ("NFG", [1], ["p_f"]), ("NOG", [3], ["p_o"]), ("CIFG", [1], ["p_f"])])
def test_a_removed_gate_keeps_its_block_with_zero_gradient(name, blocks, peepholes):
    H = 4
    lstm = random_lstm(np.random.default_rng(1), 3, H, variant=name)
    assert lstm.params["l0.W"].shape == (3, 4 * H)    # the 4H layout stays: weights interchangeable
    x, state, _ = random_inputs(np.random.default_rng(2), lstm, 2, 5, False)
    y, (h, c) = lstm.forward(x, state)
    lstm.backward(np.ones_like(y), (np.ones_like(h), np.ones_like(c)))
    for q in blocks:
        for key in ("l0.W", "l0.R", "l0.b"):
            g = lstm.grads[key]
            assert np.all(g[..., q * H:(q + 1) * H] == 0), key
            assert np.any(g != 0)
    for key in peepholes:
        assert np.all(lstm.grads["l0." + key] == 0)


def test_fgr_adds_r_gates_and_only_fgr_does():
    assert nplstm.LSTM(3, 4, variant="FGR").params["l0.R_gates"].shape == (12, 12)
    assert all("l0.R_gates" not in nplstm.LSTM(3, 4, variant=n).params for n in NAMES if n != "FGR")


def test_flags_combine_with_a_name_and_are_checked():
    lstm = nplstm.LSTM(3, 4, variant="NFG", peephole="full")      # the seed's own form: full peepholes, no f
    assert lstm.config.peephole == "full" and not lstm.config.forget_gate
    with pytest.raises(ValueError, match="variant: expected one of vanilla, NIG"):
        nplstm.LSTM(3, 4, variant="GRU")
    with pytest.raises(ValueError, match="coupled: f = 1 - i needs both an input and a forget gate"):
        nplstm.LSTM(3, 4, variant="CIFG", forget_gate=False)
    with pytest.raises(ValueError, match="input_activation: expected one of"):
        nplstm.LSTM(3, 4, input_activation="relu")


@pytest.mark.parametrize("name", NAMES)
def test_a_variant_model_survives_a_checkpoint(tmp_path, name):
    task = make_task("adding", T=10, test_size=16)
    model = build_model(task, 4, variant=name, seed=0)
    save_model(tmp_path / "m.npz", model)
    loaded = load_model(tmp_path / "m.npz")
    assert model_config(loaded) == model_config(model)
    batch = task.test_set()
    np.testing.assert_array_equal(loaded.forward(batch.x), model.forward(batch.x))
    if name in ("vanilla", "NFG", "NP"):              # a vanilla-shaped description has no new keys
        assert set(model_config(model)) == {"input_size", "hidden_size", "num_layers", "bidirectional", "peephole",
                                            "forget_gate", "output_size", "many_to_one", "dtype"}


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_every_variant_trains_on_temporal_order_from_the_cli(tmp_path, name):
    result = subprocess.run([sys.executable, "-m", "nplstm", "train", "temporal_order", "--variant", name,
                             "--steps", "20", "--eval-every", "10", "--no-progress", "--quiet",
                             "--run-dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["steps_done"] == 20 and np.isfinite(history["records"][-1]["test"]["loss"])
    config = json.loads((tmp_path / "config.json").read_text())["model"]
    assert all(config.get(k, getattr(VANILLA, k)) == v for k, v in VARIANTS[name]._asdict().items())


COMBINATIONS = [dict(VARIANTS[n]._asdict()) for n in NAMES] + [
    {**VANILLA._asdict(), "peephole": "full", "forget_gate": False},
    {**VANILLA._asdict(), "gate_recurrence": True, "coupled": True},
    {**VANILLA._asdict(), "gate_recurrence": True, "input_gate": False, "output_gate": False, "peephole": "full"},
    {**VANILLA._asdict(), "input_gate": False, "output_activation": "identity", "peephole": None}]


@pytest.mark.parametrize("flags", COMBINATIONS, ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()
                                                                      if v != getattr(VANILLA, k)) or "vanilla")
def test_the_engine_is_the_reference_cell(flags):
    """The fast path (halving, one GEMM over all steps, chunked local derivatives) against the plain
    step-by-step cell, float64: the same numbers up to rounding (1e-12 of each array's scale)."""
    from nplstm import lstm as engine
    from nplstm import reference
    rng = np.random.default_rng(4)
    T, B, I, H = 6, 3, 4, 5
    v = engine.Variant(**flags)
    shape = {"diagonal": (H,), "full": (H, H)}.get(v.peephole)
    params = {"W": rng.normal(0, 0.5, (I, 4 * H)), "R": rng.normal(0, 0.5, (H, 4 * H)), "b": rng.normal(0, 0.5, 4 * H)}
    if shape:
        params.update({k: rng.normal(0, 0.5, shape) for k in ("p_i", "p_f", "p_o")})
    if v.gate_recurrence:
        params["R_gates"] = rng.normal(0, 0.5, (3 * H, 3 * H))
    x, h0, c0 = rng.standard_normal((T, B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    dy, dh_n, dc_n = rng.standard_normal((T, B, H)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    p = None if shape is None else (params["p_i"], params["p_f"], params["p_o"])
    h, c, cache = engine.lstm_forward(x, h0, c0, params["W"], params["R"], params["b"], p, batch_sizes=[B] * T,
                                      variant=v, R_gates=params.get("R_gates"))
    dx, dh0, dc0, grads = engine.lstm_backward(dy, dh_n, dc_n, cache, params["W"], params["R"], p,
                                               R_gates=params.get("R_gates"))
    h_ref, c_ref, caches = reference.lstm_reference_forward(x, h0, c0, params, **flags)
    dx_ref, dh0_ref, dc0_ref, grads_ref = reference.lstm_reference_backward(dy, dh_n, dc_n, caches)
    pairs = [(h, h_ref), (c, c_ref), (dx, dx_ref), (dh0, dh0_ref), (dc0, dc0_ref)]
    assert set(grads) == set(grads_ref) == set(params)
    pairs += [(grads[k], grads_ref[k]) for k in params]
    for ours, ref in pairs:
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12 * max(1.0, np.abs(ref).max()))


def test_the_engine_and_the_reference_name_the_same_variants():
    from nplstm import reference
    assert {n: reference.Variant(**reference.VARIANTS[n]) for n in reference.VARIANTS} == \
        {n: reference.Variant(**v._asdict()) for n, v in VARIANTS.items()}


@pytest.mark.parametrize("name", ["NIG", "NOG", "NIAF", "NOAF", "CIFG", "FGR"])
def test_torch_export_refuses_what_torch_nn_lstm_cannot_compute(name):
    from nplstm.interop.torch import state_dict
    with pytest.raises(ValueError, match="torch.nn.LSTM is Greff's NP variant alone; this LSTM has"):
        state_dict(nplstm.LSTM(3, 4, variant=name, peephole=None))


@pytest.mark.parametrize("name", ["NIG", "NOG", "NIAF", "NOAF", "FGR", "NP"])
def test_the_anomaly_detector_names_the_gate_in_every_variant(name):
    """As for the vanilla LSTM (test_anomaly): 3e38 · 2 overflows a_f at t = 0 in float32."""
    H = 8
    lstm = nplstm.LSTM(4, H, variant=name, seed=0)
    lstm.params["l0.W"][0, H + 5] = 3e38
    x = np.random.default_rng(0).uniform(-1, 1, (3, 6, 4)).astype(np.float32)
    x[:, :, 0] = 2.0
    with nplstm.detect_anomaly(), pytest.raises(nplstm.AnomalyError) as info:
        lstm.forward(x)
    assert info.value.quantity.startswith("the pre-activation of the forget gate")
    assert info.value.where == {"layer": 0, "direction": "forward", "time step t": 0, "batch index b": 0,
                                "hidden unit": 5}


@pytest.mark.parametrize("H", [1, 3])
@pytest.mark.parametrize("peephole", ["diagonal", "full", None])
@pytest.mark.parametrize("name", NAMES)
def test_the_core_leaves_its_inputs_alone(name, peephole, H):
    """lstm_forward and lstm_backward are pure: the weights, states and gradients handed to them come back
    bit for bit (the engine scales its own copies of W, R and the peepholes; at H = 1 a reshaped weight
    is no copy unless the code makes one)."""
    from nplstm.lstm import lstm_backward, lstm_forward
    rng = np.random.default_rng(0)
    T, B, I = 3, 2, 2
    v = VARIANTS[name]._replace(peephole=peephole)
    shapes = {"x": (T, B, I), "h0": (B, H), "c0": (B, H), "W": (I, 4 * H), "R": (H, 4 * H), "b": (4 * H,),
              "dy": (T, B, H), "dh_n": (B, H), "dc_n": (B, H), "R_gates": (3 * H, 3 * H)}
    a = {k: rng.standard_normal(s) for k, s in shapes.items()}
    p = None if peephole is None else tuple(rng.standard_normal((H,) if peephole == "diagonal" else (H, H))
                                             for _ in range(3))
    before = {k: v_.copy() for k, v_ in a.items()}, None if p is None else [q.copy() for q in p]
    R_gates = a["R_gates"] if v.gate_recurrence else None
    for keep in (False, True):
        _, _, cache = lstm_forward(a["x"], a["h0"], a["c0"], a["W"], a["R"], a["b"], p, batch_sizes=(B, B, 1),
                                   variant=v, R_gates=R_gates, keep=keep)
    lstm_backward(a["dy"], a["dh_n"], a["dc_n"], cache, a["W"], a["R"], p, R_gates=R_gates)
    for k, value in a.items():
        assert np.array_equal(value, before[0][k]), k
    for q, q0 in zip(p or (), before[1] or ()):
        assert np.array_equal(q, q0), "p"
