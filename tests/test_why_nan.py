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
    tested = {"gradcheck", "e_h", "recurrent", "carry", "peephole", "np_dot", "shared_weights", "update_in_loop",
              "wraparound", "overflow", "clipping", "fixed_seed_layout", "fixed"}
    assert set(demos.DEMOS) == tested


def test_the_reproduction_without_the_blow_up_still_learns_nothing():
    """`python examples/seed_lstm.py --gamma 0.01 --epochs 10`: no NaN, h stays at -1 and c grows without end."""
    r = seed.train(epochs=10, gamma=0.01, log=lambda line: None)
    assert r["nan_y"] is None and len(r["epochs"]) == 10         # "no NaN in the output in 10 passes"
    assert r["epochs"][9]["max_c"] > 700
    assert r["epochs"][9]["mean_h"] < -0.99


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


def test_the_anomaly_detector_stops_an_unclipped_run_and_clipping_keeps_it_finite():
    r = run("clipping")
    assert r["stopped"] is not None
    assert "AnomalyError:" in r["error"] and "training update" in r["error"]
    assert "gradients are not clipped" in r["error"]
    assert r["loss"] < 1e3


@pytest.mark.slow
def test_the_corrected_question_layout_learns_with_clipping_and_not_without():
    r = run("fixed_seed_layout")
    assert r["unclipped"][0] > 1e3                               # mse after 30 updates
    assert r["clipped"][0] < 1e-2                                # mse after 300 updates


@pytest.mark.slow
def test_nplstm_learns_the_same_data():
    r = run("fixed")
    assert r["trained"] < 1e-3 and r["unseen"] < 1e-3 and r["unseen"] < r["no_change"] / 10
