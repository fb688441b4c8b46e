"""The 1997 Exp. 2a network (nplstm/science/lag1997.py): its gradients against central differences, the
online rule against the summed one, and short runs that learn the task at a small lag."""
import numpy as np
import pytest

from nplstm.science import lag1997
from nplstm.tasks import make_task


def arrays(p, seed=0):
    task = make_task("noise_free_lag", p=p)
    return lag1997._arrays(task.test_set())


def numeric(params, x, target, mask, key, eps=1e-6):
    out = np.zeros_like(params[key])
    for i in np.ndindex(out.shape):
        old = params[key][i]
        params[key][i] = old + eps
        hi, _ = lag1997.gradients(params, x, target, mask, "bptt")
        params[key][i] = old - eps
        lo, _ = lag1997.gradients(params, x, target, mask, "bptt")
        params[key][i] = old
        out[i] = (hi - lo) / (2 * eps)
    return out


def test_init_is_the_papers_uniform_range_and_shapes():
    P = lag1997.init(7, seed=3)
    assert {k: v.shape for k, v in P.items()} == {"W": (8, 4), "R": (1, 4), "b": (4,), "V": (9, 8), "v0": (8,)}
    assert all(np.abs(v).max() <= 0.2 for v in P.values())
    assert not np.array_equal(P["V"], lag1997.init(7, seed=4)["V"])


def test_bptt_gradients_match_central_differences():
    x, target, mask = arrays(5)
    P = {k: v * 5 for k, v in lag1997.init(5, seed=1).items()}    # larger weights: every path carries signal
    _, g = lag1997.gradients(P, x, target, mask, "bptt")
    for key in P:
        num = numeric(P, x, target, mask, key)
        assert np.abs(num - g[key]).max() < 1e-7 * max(1.0, np.abs(num).max()), key
        assert np.abs(g[key]).max() > 0 or key == "b", key


def test_truncated_rule_differs_from_bptt_only_through_the_recurrence():
    x, target, mask = arrays(5)
    P = {k: v * 5 for k, v in lag1997.init(5, seed=2).items()}
    _, bptt = lag1997.gradients(P, x, target, mask, "bptt")
    _, trunc = lag1997.gradients(P, x, target, mask, "truncated")
    np.testing.assert_allclose(trunc["V"], bptt["V"], rtol=1e-12)   # the output units' gradient is exact
    assert np.abs(trunc["W"] - bptt["W"]).max() > 1e-6                  # the cut path through h_{t-1} matters
    P["R"][:] = 0.0                                                     # no recurrence: nothing to truncate
    _, bptt = lag1997.gradients(P, x, target, mask, "bptt")
    _, trunc = lag1997.gradients(P, x, target, mask, "truncated")
    for key in P:
        np.testing.assert_allclose(trunc[key], bptt[key], rtol=1e-9, atol=1e-12, err_msg=key)


def test_online_updates_sum_to_the_truncated_gradient_for_a_tiny_rate():
    x, target, mask = arrays(6)
    x, target, mask = x[:, :1], target[:, :1], mask[:, :1]              # one sequence, as training sees it
    P = {k: v * 5 for k, v in lag1997.init(6, seed=5).items()}
    _, g = lag1997.gradients(P, x, target, mask, "truncated")
    moved = {k: v.copy() for k, v in P.items()}
    lr = 1e-9
    lag1997.online_sequence(moved, x, target, mask, lr)
    for key in P:
        np.testing.assert_allclose((P[key] - moved[key]) / lr, g[key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_cell_off_leaves_the_cell_alone_and_ignores_it():
    x, target, mask = arrays(5)
    P = lag1997.init(5, seed=0)
    before = {k: v.copy() for k, v in P.items()}
    lag1997.online_sequence(P, x[:, :1], target[:, :1], mask[:, :1], 1.0, cell_on=False)
    for key in ("W", "R", "b"):
        np.testing.assert_array_equal(P[key], before[key])
    np.testing.assert_array_equal(P["V"][-1], before["V"][-1])
    assert np.abs(P["v0"] - before["v0"]).max() > 0


@pytest.mark.parametrize("update, rule", [("step", "truncated"), ("sequence", "bptt")])
def test_a_short_lag_is_learned_to_the_papers_criterion(update, rule):
    lr = 1.0 if update == "step" else 0.1     # a summed update of lr 1.0 saturates every output unit
    r = lag1997.run(0, p=5, rule=rule, update=update, lr=lr, max_sequences=3000, check_every=10)
    assert r["solved"], r
    assert r["sequences"] % 10 == 0 and r["max_error"] < 0.25
    assert r["switched"] is not None and r["switched"] <= r["sequences"]


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="rule"):
        lag1997.run(0, p=3, rule="rtrl")
    with pytest.raises(ValueError, match="update"):
        lag1997.run(0, p=3, rule="bptt", update="step")


def test_summary_reports_the_mean_the_paper_uses():
    rows = [{"solved": True, "sequences": s} for s in (100, 200, 600)] + [{"solved": False, "sequences": None}]
    assert lag1997.summary(rows) == "3/4 solved; mean 300, median 200 [100–600] sequences"
