"""docs/why-nan.md stands on real runs: the reproduction learns nothing even without the blow-up, and each demo
of examples/why_nan_demos.py shows its defect and its fix, checked on the numbers the demo returns.

Each demo runs once (`run` keeps its result for every test that reads it). The command lines the document
quotes run in tests/test_examples.py (`python examples/seed_lstm.py`: NaN in the output layer, and one demo);
its ```python runnable``` blocks and links to lines of nplstm/ are checked in tests/test_docs.py.
"""
import functools
import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_example(name: str):
    """examples/<name>.py as a module, as `python examples/<name>.py` would run it but without calling main()."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demos = load_example("why_nan_demos")
seed = demos.seed                                   # examples/seed_lstm.py, the reproduction, as the demos use it


@functools.cache
def run(name: str) -> dict:
    """The numbers demo `name` returns (what `python examples/why_nan_demos.py name` prints); computed once."""
    return demos.DEMOS[name]()


def test_every_demo_is_tested():
    tested = {"readings", "gradcheck", "e_h", "recurrent", "carry", "peephole", "np_dot", "shared_weights",
              "update_in_loop", "wraparound", "overflow", "sigmoid", "clipping", "fixed_seed_layout", "fixed"}
    assert set(demos.DEMOS) == tested


def test_the_reproduction_without_the_blow_up_still_learns_nothing():
    """`python examples/seed_lstm.py --gamma 0.01 --epochs 10`: no NaN, h stays at -1 and c grows without end."""
    r = seed.train(epochs=10, gamma=0.01, log=lambda line: None)
    assert r["nan_y"] is None and len(r["epochs"]) == 10         # "no NaN in the output in 10 passes"
    assert r["epochs"][9]["max_c"] > 700
    assert r["epochs"][9]["mean_h"] < -0.99


def test_when_the_nan_comes_depends_on_the_reading_the_growth_per_step_does_not():
    """docs/why-nan.md, "The short answer": NaN in pass 4 only with S = 100 and each pass from the last copy."""
    r = run("readings")
    runs = r["runs"]
    assert runs[100, True]["nan"][0] == 4                        # from the last copy: pass 4
    assert runs[100, False]["nan"] is None and len(runs[100, False]["passes"]) == 20   # from copy 0: none in 20
    assert runs[100, False]["passes"][0]["max_vv"] > 1e60        # though vv still reaches ~4.7e67 in pass 0
    assert runs[430, False]["nan"] == runs[430, True]["nan"]      # one pass longer than ~425 steps: NaN in pass 0
    assert 5.4 < r["growth"][0] < 5.6                            # 1 - 0.1 (1 + 8^2) = -5.5
    assert r["nan_steps"][-1] - r["nan_steps"][0] < 20           # the NaN comes ~425 steps in, whatever the split
    assert -1 < r["gain"][0] <= r["gain"][1] < 1                 # from copy 0, the output layer ends up stable


@pytest.mark.slow
def test_gradcheck_fails_as_written_and_with_any_one_fix_left_out_and_passes_with_all():
    r = run("gradcheck")
    reports = [report for report, _ in r["rows"].values()]      # as written, each fix left out, all five fixed
    assert len(reports) == 7
    assert not any(report.ok for report in reports[:6]) and reports[6].ok
    assert reports[6].worst < 1e-6
    assert r["rows"]["as written (all five defects)"][1] > 10   # the LSTM gradient is far off
    assert r["nplstm"].worst < 1e-6
    assert r["agreement"] < 1e-12                                # the fixed backward is nplstm's


@pytest.mark.slow
@pytest.mark.parametrize("name", ["e_h", "recurrent", "carry", "peephole"])
def test_each_missing_term_alone_breaks_the_gradient(name):
    r = run(name)
    assert r["without"].worst > 1e-2
    assert r["with"].worst < 1e-6


@pytest.mark.slow                                                # the demo runs gradcheck twice
def test_e_h_one_makes_the_lstm_gradient_ignore_the_target():
    r = run("e_h")
    assert r["same"] == 0.0
    assert r["mean_h"][1] < -0.99


@pytest.mark.slow                                                # the demo runs gradcheck twice
def test_the_e_c_carry_line_has_no_effect():
    assert run("carry")["identical"] is True


def test_np_dot_gives_one_number_for_the_whole_gradient_and_destabilises_the_output_layer():
    r = run("np_dot")
    assert r["distinct"] == 1 and r["err_dot"] > 0.1
    assert r["gains"]["np.dot"][-1] > 1e3
    assert r["err_outer"] < 1e-6 and r["gains"]["np.outer"][-1] < 1e-6


def test_shared_weights_need_the_sum_over_time():
    r = run("shared_weights")
    assert r["last_off"] > 0.1
    assert r["report"].worst < 1e-6


def test_the_weight_copies_need_one_slot_more_than_the_steps():
    t, message = run("shared_weights")["overrun"]
    assert t == 99 and "index 100 is out of bounds" in message


def test_updating_inside_the_loop_only_chases_the_target():
    r = run("update_in_loop")
    assert r["frozen"] > 2 * r["in_loop"]
    assert r["spread"] < 1e-10


def test_the_state_wraps_around_and_the_cell_state_grows():
    r = run("wraparound")
    assert r["carried"] > 10
    assert r["growth"][-1] - r["growth"][-2] > 50


def test_a_tanh_written_from_exp_turns_the_reproduction_to_nan():
    r = run("overflow")
    assert r["nan"][2] in {"h", "c", "e_c", "o_", "y"}
    table = r["table"]
    assert np.isnan(table["float64", -800.0]["tanh"]) and np.isnan(table["float32", -100.0]["tanh"])
    assert all(np.isfinite(row["nplstm.sigmoid"]) and np.isfinite(row["np.tanh"]) for row in table.values())


def test_sigmoid_has_a_small_absolute_error_but_no_relative_accuracy_far_below_zero():
    r = demos.demo_sigmoid(runs=0)                               # accuracy only; the timing is not asserted
    acc = r["accuracy"]
    assert acc["float32", "nplstm.sigmoid"][0] < 1e-7 and acc["float64", "nplstm.sigmoid"][0] < 1e-15
    assert acc["float32", "nplstm.sigmoid"][1] >= 1 and r["at_minus_30"]["float32"] == 0.0   # exact: 9.36e-14
    assert -21 < acc["float32", "nplstm.sigmoid"][2] < -19
    for form in ("np.where form", "exp(min(x,0))/(1+exp(-|x|))"):
        assert acc["float32", form][1] < 1e-6 and acc["float64", form][1] < 1e-15 and acc["float32", form][2] is None


def test_the_anomaly_detector_stops_an_unclipped_run_and_clipping_keeps_it_finite():
    r = run("clipping")
    assert r["stopped"] is not None
    assert "AnomalyError:" in r["error"] and "training update" in r["error"]
    assert "their sum over the 800 entries" in r["error"]       # no single square overflowed: the sum did
    assert "gradients are not clipped" in r["error"]
    assert r["loss"] < 1e3


def test_lr_10_is_gradient_descent_overshooting_in_the_output_layer():
    r = run("clipping")
    assert r["growth"] > 1.5                                     # the gradient norm grows by a constant factor,
    assert r["growth"] == pytest.approx(10 * r["curvature"] - 1, rel=1e-3)   # |1 - lr λ|: the output layer's curvature
    assert r["cosine"] < -0.99                                   # and flips direction: each step overshoots
    assert r["size"]["head.b"] > 1e6 * r["size"]["lstm.l0.R"]      # the output layer blows up, not the recurrence
    assert r["lr1"] < 1e-2                                       # a smaller step converges, unclipped


@pytest.mark.slow
def test_the_corrected_question_layout_learns_with_clipping_and_not_without():
    r = run("fixed_seed_layout")
    assert r["unclipped"][0] > 1e3                               # mse after 30 updates
    assert r["clipped"][0] < 1e-2                                # mse after 300 updates


@pytest.mark.slow
def test_nplstm_learns_the_same_data():
    r = run("fixed")
    assert r["trained"] < 1e-3 and r["unseen"] < 1e-3 and r["unseen"] < r["no_change"] / 10
    assert r["linear"][1] < 1e-20                                # the 8-wide windows need no memory: a linear map fits
    assert r["memory"][1] < r["memory_linear"][1] / 10           # one value per step: the LSTM's state is needed
