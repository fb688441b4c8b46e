"""`nplstm odyssey`: Welch's test against known values, the search's choices, the verdicts on planted
results, the plain RNN inside a training Model, and a tiny grid end to end (in-process and as a command)."""
import dataclasses
import json
import math
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import nplstm
from nplstm.layers import Linear, Model
from nplstm.science import odyssey, report
from nplstm.science.baselines import CELLS, RNNLayer, count_params, make_model
from nplstm.science.odyssey import SEARCH_SEED, Grid, Job, choose_lrs, make_grid, measure_jobs, run_odyssey, search_jobs
from nplstm.science.stats import betainc, t_two_sided, verdict, welch
from nplstm.tasks import make_task

# --- Welch's test and the t distribution


def test_welch_matches_r_on_the_sleep_data():
    # R: t.test(extra ~ group, data = sleep) -> t = -1.8608, df = 17.776, p-value = 0.07939 (Welch, the default)
    a = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    b = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    w = welch(a, b)
    assert w.t == pytest.approx(-1.8608, abs=5e-5)
    assert w.df == pytest.approx(17.776, abs=5e-4)
    assert w.p == pytest.approx(0.07939, abs=5e-6)
    assert welch(b, a).p == pytest.approx(w.p) and welch(b, a).t == pytest.approx(-w.t)


# Student t quantiles as printed in tables (three decimals): P(|T| >= q) = 0.05 and 0.01
TABLE = [(1, 12.706, 0.05), (2, 4.303, 0.05), (5, 2.571, 0.05), (10, 2.228, 0.05), (30, 2.042, 0.05),
         (120, 1.980, 0.05), (1, 63.657, 0.01), (5, 4.032, 0.01), (10, 3.169, 0.01), (30, 2.750, 0.01)]


@pytest.mark.parametrize("df,q,p", TABLE)
def test_two_sided_p_at_tabulated_quantiles(df, q, p):
    assert t_two_sided(q, df) == pytest.approx(p, rel=2e-3)   # the table's rounding of q, not our error


@given(st.floats(-50, 50))
def test_t_distribution_closed_forms(t):
    assert t_two_sided(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(abs(t)), abs=1e-12)   # Cauchy
    assert t_two_sided(t, 2) == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t), abs=1e-12)
    assert t_two_sided(t, 1e6) == pytest.approx(math.erfc(abs(t) / math.sqrt(2)), abs=1e-6)  # the normal limit


@settings(max_examples=200)
@given(st.integers(1, 40), st.integers(1, 40), st.floats(0, 1))
def test_betainc_is_a_binomial_tail_for_integer_arguments(a, b, x):
    # I_x(a, b) = P(Binomial(a + b - 1, x) >= a)
    n = a + b - 1
    tail = math.fsum(math.comb(n, j) * x ** j * (1 - x) ** (n - j) for j in range(a, n + 1))
    assert betainc(a, b, x) == pytest.approx(tail, abs=1e-12)


@given(st.floats(0.05, 300), st.floats(0.05, 300), st.floats(0, 1))
def test_betainc_symmetry_and_range(a, b, x):
    y = 1 - x
    x = 1 - y                                # now x + y == 1 exactly (Sterbenz), so the identity is testable
    value = betainc(a, b, x)
    assert 0 <= value <= 1
    assert value + betainc(b, a, y) == pytest.approx(1, abs=1e-10)


def test_betainc_known_values_and_bad_arguments():
    assert betainc(0.5, 0.5, 0.5) == pytest.approx(0.5, abs=1e-14)
    assert betainc(0.5, 0.5, 0.25) == pytest.approx(2 / math.pi * math.asin(0.5), abs=1e-14)   # arcsine law
    assert betainc(3, 1, 0.7) == pytest.approx(0.7 ** 3, abs=1e-14)
    for bad in ((0, 1, 0.5), (1, -1, 0.5), (1, 1, 1.5), (1, 1, math.nan)):
        with pytest.raises(ValueError, match="betainc"):
            betainc(*bad)


def test_welch_against_scipy_when_it_is_installed():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n_a, n_b in ((2, 2), (3, 7), (20, 5)):
        a, b = rng.normal(0, 1, n_a), rng.normal(0.8, 3, n_b)
        ours, theirs = welch(a, b), stats.ttest_ind(a, b, equal_var=False)
        assert ours.t == pytest.approx(theirs.statistic) and ours.p == pytest.approx(theirs.pvalue, rel=1e-9)


def test_welch_edge_cases():
    assert welch([1, 1], [1, 1]).p == 1.0
    assert welch([1, 1], [2, 2]).p == 0.0                    # no spread, different means: an exact difference
    for bad in (([1.0], [1.0, 2.0]), ([1.0, math.nan], [1.0, 2.0])):
        with pytest.raises(ValueError, match="at least 2 finite"):
            welch(*bad)


def test_verdict_follows_the_metric_direction():
    assert verdict(0.01, 0.5, 0.1, higher_is_better=False) == "hurts"       # a larger error
    assert verdict(0.01, 0.05, 0.1, higher_is_better=False) == "helps"
    assert verdict(0.01, 0.5, 0.9, higher_is_better=True) == "hurts"        # a lower accuracy
    assert verdict(0.2, 0.5, 0.1, higher_is_better=False) == "no significant difference"
    assert verdict(math.nan, 0.5, 0.1, higher_is_better=False) == "no significant difference"

# --- the grid and the search


def test_grids_and_their_refusals():
    full, quick = make_grid(), make_grid(quick=True)
    assert [t.name for t in full.tasks] == ["temporal_order", "adding", "continual_reber", "charlm", "series"]
    assert full.cells == CELLS and len(CELLS) == 11 and full.seeds == 5 and quick.seeds == 3
    assert all(q.steps < f.steps for q, f in zip(quick.tasks, full.tasks))
    assert make_grid(cells=["NFG"]).cells == ("vanilla", "NFG")             # the reference is always there
    for kwargs, words in (({"tasks": ["nope"]}, "unknown task 'nope'"), ({"cells": ["LSTM"]}, "unknown model"),
                          ({"cells": ["NP", "NP"]}, "once"), ({"seeds": 1}, "seeds"), ({"steps": 0}, "steps"),
                          ({"lrs": [0.0]}, "lrs"), ({"tasks": ["series"], "series_path": "/no/such.csv"}, "such.csv")):
        with pytest.raises(ValueError, match=words):
            make_grid(**kwargs)


def test_search_then_test_jobs():
    grid = make_grid(tasks=["adding"], cells=["vanilla", "NIG"], lrs=[0.01, 0.001], search_seeds=2, seeds=3)
    search = search_jobs(grid)
    assert len(search) == 1 * 2 * 2 * 2 and {j.seed for j in search} == {SEARCH_SEED, SEARCH_SEED + 1}
    chosen = {("adding", "vanilla"): {"lr": 0.01}, ("adding", "NIG"): {"na": "refused"}}
    final = measure_jobs(grid, chosen)
    assert final == [Job("adding", "vanilla", 0.01, k, "test") for k in range(3)]   # none for a refused model


def _search_run(task, cell, lr, seed, validation, na=""):
    """A search run's record, as run_job writes it."""
    return {"task": task, "cell": cell, "lr": lr, "seed": seed, "stage": "search", "validation": validation,
            "na": na, "diverged": "" if na or math.isfinite(validation) else "NaN", "metric": math.nan,
            "solved": False, "steps": 10, "params": 100, "seconds": 1.0}


def test_choose_lrs_best_mean_worst_divergence_ties_to_the_smaller_rate():
    grid = make_grid(tasks=["adding", "continual_reber"], cells=["vanilla", "GRU"], lrs=[1e-3, 1e-2, 1e-1],
                     search_seeds=2)
    runs = [_search_run("adding", "vanilla", lr, s, v) for lr, vs in
            ((1e-3, (0.5, 0.3)), (1e-2, (0.1, 0.2)), (1e-1, (0.0, math.nan))) for s, v in enumerate(vs)]
    runs += [_search_run("adding", "GRU", lr, s, 0.2) for lr in grid.lrs for s in range(2)]        # all tie
    runs += [_search_run("continual_reber", "vanilla", lr, s, acc) for lr, acc in ((1e-3, 0.6), (1e-2, 0.9),
                                                                                  (1e-1, 0.7)) for s in range(2)]
    runs += [_search_run("continual_reber", "GRU", lr, s, math.nan, na="a stream") for lr in grid.lrs for s in range(2)]
    chosen = choose_lrs(grid, runs)
    assert chosen["adding", "vanilla"]["lr"] == 1e-2          # 1e-1 diverged once: the worst, whatever else
    assert chosen["adding", "GRU"]["lr"] == 1e-3
    assert chosen["continual_reber", "vanilla"]["lr"] == 1e-2   # higher is better there
    assert chosen["continual_reber", "GRU"] == {"na": "a stream"}

# --- verdicts on planted results


def planted(seed=0, n=6, same=True):
    """Results as run_odyssey returns them: NFG clearly worse than vanilla on both tasks, the GRU better on adding,
    CIFG drawn from vanilla's distribution (same=False) or given vanilla's very numbers (same=True)."""
    rng = np.random.default_rng(seed)
    grid = make_grid(tasks=["adding", "continual_reber"], cells=["vanilla", "NFG", "CIFG", "GRU"], seeds=n,
                     lrs=[1e-3, 1e-2])
    centre = {("adding", "vanilla"): 0.01, ("adding", "NFG"): 0.2, ("adding", "CIFG"): 0.01, ("adding", "GRU"): 0.005,
              ("continual_reber", "vanilla"): 0.99, ("continual_reber", "NFG"): 0.5, ("continual_reber", "CIFG"): 0.99}
    runs, chosen, vanilla = [], [], {}
    for (task, cell), c in centre.items():
        for lr in grid.lrs:                  # the search: the lr matters, the variant less
            runs.append(_search_run(task, cell, lr, SEARCH_SEED, c + (1.0 if lr == 1e-3 else 0.0)))
        chosen.append({"task": task, "cell": cell, "lr": 1e-2})
        values = vanilla[task][::-1] if same and cell == "CIFG" else c + rng.normal(0, 0.002, n)
        if cell == "vanilla":
            vanilla[task] = values
        runs += [{"task": task, "cell": cell, "lr": 1e-2, "seed": k, "stage": "test", "na": "", "diverged": "",
                  "metric": float(v), "solved": c < 0.1 or c > 0.95, "params": 100, "seconds": 1.0,
                  "validation": math.nan} for k, v in enumerate(values)]
    runs.append(_search_run("continual_reber", "GRU", 1e-2, SEARCH_SEED, math.nan, na="a stream"))
    chosen.append({"task": "continual_reber", "cell": "GRU", "na": "a stream"})
    return {"grid": grid.as_json(), "runs": runs, "chosen": chosen, "seconds": 1.0, "jobs": 1}


def test_a_planted_worse_variant_hurts_and_an_equal_one_does_not():
    table = report.summarize(planted())
    for task in ("adding", "continual_reber"):
        assert table[task]["NFG"]["verdict"] == "hurts" and table[task]["NFG"]["p"] < 1e-6
        assert table[task]["vanilla"]["verdict"] == "reference"
    assert table["adding"]["GRU"]["verdict"] == "helps"
    assert table["continual_reber"]["GRU"] == {"na": "a stream"}
    assert {table[t]["CIFG"]["verdict"] for t in table} == {"no significant difference"}
    # drawn from vanilla's distribution, CIFG differs at p < 0.05 on about one task in twenty, no more
    false = sum(report.summarize(planted(seed, same=False))[t]["CIFG"]["verdict"] != "no significant difference"
                for seed in range(20) for t in ("adding", "continual_reber"))
    assert false <= 8


def test_the_learning_rate_share_is_a_two_way_anova():
    grid = make_grid(tasks=["adding"], cells=["vanilla", "NP"], lrs=[1e-3, 1e-2])
    values = {("vanilla", 1e-3): 1.0, ("vanilla", 1e-2): 3.0, ("NP", 1e-3): 1.2, ("NP", 1e-2): math.nan}
    runs = [_search_run("adding", c, lr, SEARCH_SEED, v) for (c, lr), v in values.items()]
    shares = report.lr_importance({"grid": grid.as_json(), "runs": runs})
    # the diverged run counts as the worst value, 3.0: cell means 2.0, 2.1; rate means 1.1, 3.0; grand 2.05
    total = sum((v - 2.05) ** 2 for v in (1.0, 3.0, 1.2, 3.0))
    assert shares["adding"]["lr"] == pytest.approx(2 * ((1.1 - 2.05) ** 2 + (3.0 - 2.05) ** 2) / total)
    assert shares["adding"]["variant"] == pytest.approx(2 * (0.05 ** 2 + 0.05 ** 2) / total)


def test_findings_and_the_learning_rate_share_on_planted_results():
    results = planted()
    shares = report.lr_importance(results)
    assert shares["adding"]["lr"] > shares["adding"]["variant"]
    marks = {claim: mark for claim, mark, _ in report.findings(report.summarize(results), shares)}
    assert marks["No variant significantly improves on the vanilla LSTM"] == "agree"    # the GRU is not a variant
    assert next(m for c, m in marks.items() if c.startswith("The forget gate")) == "inconclusive"  # NOAF not run
    assert next(m for c, m in marks.items() if c.startswith("CIFG")) == "inconclusive"            # NP not run
    doc = report.markdown(results)
    assert "| NFG |" in doc and "hurts" in doc and "n/a: a stream" in doc and "## Greff et al." in doc

# --- the plain RNN as a Model's recurrent layer


@pytest.mark.parametrize("many_to_one", [True, False])
def test_the_rnn_layer_backpropagates_exactly(many_to_one):
    rng = np.random.default_rng(0)
    model = Model(RNNLayer(3, 4, dtype=np.float64, seed=1), Linear(4, 2, dtype=np.float64, seed=2),
                  many_to_one=many_to_one)
    x = rng.standard_normal((3, 5, 3))
    report_ = nplstm.gradcheck(model, x, lengths=np.array([5, 2, 4]))
    assert report_.ok, report_


def test_the_rnn_layers_final_state_is_each_rows_own():
    layer, rng = RNNLayer(2, 3, dtype=np.float64), np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 2))
    _, h_n = layer.forward(x, lengths=np.array([6, 3]))
    _, alone = layer.forward(x[1:, :3])
    np.testing.assert_allclose(h_n[0, 1], alone[0, 0])


def test_models_and_their_parameter_counts():
    task = make_task("adding", T=10, test_size=4)
    counts = {c: count_params(make_model(task, c, 8)) for c in CELLS}
    block = 2 * 8 + 8 * 8 + 8 + 8            # one gate: W columns, R columns, bias, peephole
    assert counts["vanilla"] - counts["NIG"] == counts["vanilla"] - counts["NFG"] == block
    assert counts["FGR"] - counts["vanilla"] == 9 * 8 * 8 and counts["RNN"] < counts["GRU"] < counts["vanilla"]
    with pytest.raises(ValueError, match="cell"):
        make_model(task, "LSTM", 4)

# --- end to end


def tiny(grid: Grid) -> Grid:
    small = {"test_size": 64, "test_steps": 200, "max_test_windows": 8}
    return dataclasses.replace(grid, tasks=tuple(dataclasses.replace(
        t, options={**t.options, **{k: v for k, v in small.items() if k in t.options}}) for t in grid.tasks))


def test_a_tiny_odyssey_end_to_end(tmp_path, monkeypatch):
    cells = ["vanilla", "NFG", "NOAF", "GRU", "RNN"]
    grid = tiny(make_grid(quick=True, tasks=["temporal_order", "continual_reber", "series"], cells=cells,
                          seeds=2, steps=4, lrs=[0.01, 0.003]))
    real = odyssey.make_model

    def refusing(task, cell, hidden, *, seed):   # a combination the trainer would refuse, as it once did these
        if cell == "GRU" and task.name == "continual_reber":
            raise ValueError("task continual_reber is a stream: refused for this test")
        return real(task, cell, hidden, seed=seed)
    monkeypatch.setattr(odyssey, "make_model", refusing)
    start = time.perf_counter()
    kept = []
    results = run_odyssey(grid, jobs=1, print_fn=lambda *_: None, keep=kept.append)
    assert time.perf_counter() - start < 30
    written = report.write(results, tmp_path)
    doc = (tmp_path / "odyssey.md").read_text()
    sections = {part.split("\n")[0]: part for part in doc.split("\n## ")}
    for spec in grid.tasks:
        assert all(f"| {c} |" in sections[spec.label] for c in cells), sections[spec.label]
    assert doc.count("n/a: task continual_reber is a stream: refused for this test") == 1   # with the reason
    runs = json.loads((tmp_path / "runs.json").read_text())["runs"]
    assert len(runs) == len(kept) == 3 * 5 * 2 + (3 * 5 - 1) * 2        # search, then 2 seeds where it trains
    assert not any(r["na"].startswith("failed") for r in runs)
    assert all(r["steps"] == 4 for r in runs if not r["na"] and not r["diverged"] and not r["solved"])
    assert tmp_path / "odyssey.md" in written


def nplstm_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nplstm", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_the_odyssey_command_writes_once_and_refuses_to_overwrite(tmp_path):
    args = ["odyssey", "--quick", "--tasks", "series", "--variants", "NOAF", "RNN", "--seeds", "2", "--steps", "3",
            "--lrs", "0.01", "--out", "D"]
    result = nplstm_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = (tmp_path / "D" / "odyssey.md").read_text()
    assert all(f"| {c} |" in doc for c in ("vanilla", "NOAF", "RNN")) and "--tasks series" in doc
    assert (tmp_path / "D" / "runs.json").exists()
    again = nplstm_cli(*args, cwd=tmp_path)
    assert again.returncode != 0 and len(again.stderr.splitlines()) == 1 and "already exists" in again.stderr


@pytest.mark.parametrize("bad,flag", [(["--seeds", "1"], "--seeds"), (["--tasks", "reber"], "--tasks"),
                                      (["--variants", "LSTM"], "--variants"), (["--jobs", "0"], "--jobs"),
                                      (["--lrs", "-1"], "--lrs"), (["--steps", "0"], "--steps"),
                                      (["--series", "missing.csv"], "missing.csv")])
def test_malformed_odyssey_options_are_one_line(bad, flag, tmp_path):
    result = nplstm_cli("odyssey", "--quick", *bad, "--out", "D", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and flag in result.stderr, result.stderr
    assert not (tmp_path / "D").exists()


def test_parallel_runs_give_the_serial_numbers():
    grid = make_grid(tasks=["series"], cells=["vanilla", "RNN"], seeds=2, steps=3, lrs=[0.01, 0.03])
    serial, parallel = (run_odyssey(grid, jobs=n, print_fn=lambda *_: None) for n in (1, 2))
    strip = lambda r: report.plain({k: v for k, v in r.items() if k != "seconds"})   # NaN != NaN: compare as null
    assert [strip(r) for r in parallel["runs"]] == [strip(r) for r in serial["runs"]]
