"""check_gradients and compare_trace find what is wrong in a learner's own LSTM: the question's backward
(examples/check_your_lstm.py, defect by defect) and planted bugs in a small row-vector LSTM written here."""
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

import nplstm
from nplstm import checking
from nplstm.reference import sigmoid

ROOT = Path(__file__).resolve().parents[1]
T, B, I, H = 5, 2, 3, 4


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ex = load_example("check_your_lstm")


# --- a learner's LSTM: row vectors, diagonal peepholes, loss sum(dy * h), with bugs to plant ----------------

def my_lstm(p, x, dy, bugs=()):
    """-> loss, grads (keys of p), trace of every quantity compare_trace knows, per step (T, B, ·)."""
    Wi, Wf, Wg, Wo = np.split(p["W"], 4, axis=1)
    Ri, Rf, Rg, Ro = np.split(p["R"], 4, axis=1)
    bi, bf, bg, bo = np.split(p["b"], 4)
    tr = {k: [] for k in ("a_i", "a_f", "a_g", "a_o", "i", "f", "g", "o", "c", "h")}
    h, c = np.zeros((B, H)), np.zeros((B, H))
    for t in range(T):
        bf_t = bf + 0.3 if "forget_bias_from_3" in bugs and t >= 3 else bf
        a_i = x[t] @ Wi + h @ Ri + bi + c * p["p_i"]
        a_f = x[t] @ Wf + h @ Rf + bf_t + c * p["p_f"]
        a_g = x[t] @ Wg + h @ Rg + bg
        i, f, g = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g)
        c = f * c + i * g
        a_o = x[t] @ Wo + h @ Ro + bo + c * p["p_o"]
        o = sigmoid(a_o)
        h = o * np.tanh(c)
        for k, v in zip(tr, (a_i, a_f, a_g, a_o, i, f, g, o, c, h)):
            tr[k].append(v)
    tr = {k: np.stack(v) for k, v in tr.items()}
    tr["a"] = np.concatenate([tr["a_i"], tr["a_f"], tr["a_g"], tr["a_o"]], axis=2)
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    back = {k: [None] * T for k in ("dh", "dc", "da_o", "da_i", "da_f", "da_g", "dc_prev", "dh_prev", "dx")}
    dh_next, dc_next = np.zeros((B, H)), np.zeros((B, H))
    for t in reversed(range(T)):
        i, f, g, o, c = (tr[k][t] for k in "ifgoc")
        c_prev = tr["c"][t - 1] if t else np.zeros((B, H))
        h_prev = tr["h"][t - 1] if t else np.zeros((B, H))
        dh = dy[t] + dh_next
        da_o = dh * np.tanh(c) * o * (1 - o)
        dc = dc_next + dh * o * (1 - np.tanh(c) ** 2)
        if "no_peephole_dc" not in bugs:
            dc = dc + da_o * p["p_o"]
        da_i, da_f, da_g = dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g ** 2)
        da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)
        dc_next = (dc * f if "no_carry" not in bugs else 0 * dc) + da_i * p["p_i"] + da_f * p["p_f"]
        dh_next = da @ p["R"].T
        if "last_step_only" not in bugs or t == T - 1:
            grads["W"] += x[t].T @ da
        grads["R"] += (tr["h"][t] if "h_t_in_dR" in bugs else h_prev).T @ da
        grads["b"] += da.sum(axis=0)
        for k, dak, cc in (("p_i", da_i, c_prev), ("p_f", da_f, c_prev), ("p_o", da_o, c)):
            grads[k] += (dak * cc).sum(axis=0)
        for k, v in zip(back, (dh, dc, da_o, da_i, da_f, da_g, dc_next, dh_next, da @ p["W"].T)):
            back[k][t] = v
    tr.update({k: np.stack(v) for k, v in back.items()})
    tr["da"] = np.concatenate([tr["da_i"], tr["da_f"], tr["da_g"], tr["da_o"]], axis=2)
    if "sign" in bugs:
        grads["R"] = -grads["R"]
    if "twice" in bugs:
        grads["b"] = 2 * grads["b"]
    return float((dy * tr["h"]).sum()), grads, tr


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    p = {"W": rng.normal(0, 0.5, (I, 4 * H)), "R": rng.normal(0, 0.5, (H, 4 * H)), "b": rng.normal(0, 0.5, 4 * H),
         **{k: rng.normal(0, 0.5, H) for k in ("p_i", "p_f", "p_o")}}
    return p, rng.standard_normal((T, B, I)), rng.standard_normal((T, B, H))


def check(problem, bugs=(), **kw):
    p, x, dy = problem
    return nplstm.check_gradients(lambda q: my_lstm(q, x, dy, bugs)[:2], p, print_fn=None, **kw)


# --- check_gradients ------------------------------------------------------------------------------------

def test_a_correct_gradient_passes_and_the_table_says_so(problem, capsys):
    p, x, dy = problem
    before = {k: v.copy() for k, v in p.items()}
    result = nplstm.check_gradients(lambda q: my_lstm(q, x, dy)[:2], p)
    assert result.ok and result.wrong == []
    assert [r.checked for r in result.rows] == [v.size for v in p.values()]
    assert all(r.error < 1e-5 for r in result.rows)
    out = capsys.readouterr().out
    assert out.strip().endswith("all gradients OK") and re.search(r"^p_o +\(4,\) +4 ", out, re.M), out
    assert all(np.array_equal(p[k], before[k]) for k in p)          # the learner's arrays are left as they were


@pytest.mark.parametrize("bug,array,note", [
    ("sign", "R", "sign flipped: analytic = -numeric"),
    ("twice", "b", "off by a constant factor: analytic = 2 x numeric (counted twice?)"),
    ("last_step_only", "W", "elements wrong"),
    ("h_t_in_dR", "R", "elements wrong"),
])
def test_a_planted_bug_is_flagged_in_its_own_array_and_nowhere_else(problem, bug, array, note):
    result = check(problem, (bug,))
    assert result.wrong == [array]
    assert result[array].verdict == "WRONG" and note in result[array].note
    assert result[array].error > 1e-3


def test_a_missing_or_misshapen_gradient_is_named(problem):
    p, x, dy = problem

    def fn(q):
        loss, g, _ = my_lstm(q, x, dy)
        g["R"] = g["R"].T                                   # transposed
        g["dW"] = g.pop("W")                                # under another name
        g["p_o"] = np.zeros_like(g["p_o"])                  # never computed
        g["p_f"] = g["p_f"] * np.nan
        return loss, g
    result = nplstm.check_gradients(fn, p, print_fn=None)
    assert result["W"].verdict == "MISSING" and "grads has 'dW'" in result["W"].note
    assert result["R"].verdict == "SHAPE" and "transposed" in result["R"].note
    assert result["p_o"].verdict == "WRONG" and result["p_o"].note.startswith("all zero")
    assert result["p_f"].verdict == "NON-FINITE"
    assert result["dW"].verdict == "EXTRA"
    assert set(result.wrong) == {"W", "R", "p_o", "p_f", "dW"} and result["b"].ok


def test_elements_samples_big_arrays(problem):
    result = check(problem, ("sign",), elements=5)
    assert [r.checked for r in result.rows] == [5, 5, 5, 4, 4, 4]
    assert result.wrong == ["R"]


def test_float32_params_or_loss_are_refused_in_one_line(problem):
    p, x, dy = problem
    with pytest.raises(ValueError) as err:
        nplstm.check_gradients(lambda q: my_lstm(q, x, dy)[:2], {**p, "W": p["W"].astype(np.float32)})
    assert len(str(err.value).splitlines()) == 1 and "params['W'] is float32" in str(err.value)
    assert "float64" in str(err.value)
    with pytest.raises(ValueError, match="the loss is float32; finite differences need float64"):
        nplstm.check_gradients(lambda q: (np.float32(1.0), {}), p)


@pytest.mark.parametrize("fn,message", [
    (lambda q: 1.0, r"must return \(loss, grads\).*returned a float"),
    (lambda q: (1.0, 2.0, 3.0), "returned a tuple of length 3"),
    (lambda q: (np.ones(3), {}), "the loss must be one number, got ndarray of shape \\(3,\\)"),
    (lambda q: (1.0, [1.0]), "grads must be a dict keyed like params, got list"),
    (lambda q: (float("nan"), {}), "the loss is nan"),
])
def test_wrong_returns_are_named(problem, fn, message):
    with pytest.raises(ValueError, match=message):
        nplstm.check_gradients(fn, problem[0], print_fn=None)


def test_wrong_params_and_a_weight_update_inside_fn_are_refused(problem):
    p, x, dy = problem
    with pytest.raises(ValueError, match="params must be a non-empty dict"):
        nplstm.check_gradients(lambda q: (0.0, {}), [p["W"]])
    with pytest.raises(ValueError, match=r"params\['n'\] must be a float64 numpy array, got list"):
        nplstm.check_gradients(lambda q: (0.0, {}), {"n": [1.0]})

    def updates(q):
        loss, g, _ = my_lstm(q, x, dy)
        q["W"] -= 0.1 * g["W"]                              # the seed's update inside the loop
        return loss, g
    with pytest.raises(ValueError, match=r"fn changed params\['W'\]"):
        nplstm.check_gradients(updates, p, print_fn=None)
    assert np.array_equal(p["W"], problem[0]["W"])


def test_the_learners_arrays_survive_an_fn_that_fails_halfway(problem):
    p, x, dy = problem
    before = {k: v.copy() for k, v in p.items()}
    calls = []

    def fails(q):
        calls.append(1)
        if len(calls) == 7:
            raise RuntimeError("boom")
        return my_lstm(q, x, dy)[:2]
    with pytest.raises(RuntimeError):
        nplstm.check_gradients(fails, p, print_fn=None)
    assert all(np.array_equal(p[k], before[k]) for k in p)


# --- the question's backward, defect by defect ---------------------------------------------------------

@pytest.fixture(scope="module")
def seed_problem():
    x, target = ex.seed.sine_windows(4, 8)
    return ex.init(8), x, target


def seed_check(seed_problem, fixes):
    params, x, target = seed_problem
    return nplstm.check_gradients(lambda q: ex.seed_lstm(q, x, target, fixes)[:2], params, elements=24,
                                  print_fn=None)


def test_the_questions_backward_is_wrong_everywhere_but_the_output_bias(seed_problem):
    result = seed_check(seed_problem, ())
    assert result.wrong == ["w", "u", "v", "b", "vv"] and result["d1"].ok
    assert "np.dot of two 1-D vectors" in result["vv"].note and "np.dot" in result["w"].note


@pytest.mark.parametrize("fix", ex.FIXES)
def test_each_defect_alone_is_caught(seed_problem, fix):
    result = seed_check(seed_problem, tuple(f for f in ex.FIXES if f != fix))
    assert not result.ok and {"w", "u"} <= set(result.wrong)
    assert ("vv" in result.wrong) == (fix == "outer") and ("b" in result.wrong) == (fix != "outer")


def test_all_five_fixes_pass(seed_problem):
    assert seed_check(seed_problem, ex.FIXES).ok


def test_compare_trace_finds_the_defects_in_the_order_of_the_backward(seed_problem):
    params, x, target = seed_problem
    S, found = x.shape[1], []
    for k in range(len(ex.FIXES) + 1):
        _, grads, tr = ex.seed_lstm(params, x, target, ex.FIXES[:k])
        trace = {**{n: tr[n] for n in ex.NAMES}, **{"d" + n: grads[n] for n in ("w", "u", "v", "b")}}
        r = nplstm.compare_trace(trace, ex.lstm_part(params), x, names=ex.NAMES, dy=tr["dy"], layout="seed")
        found.append(None if r.ok else (r.first.name, r.first.t))
    assert found == [("e_h", S - 1), ("e_c", S - 1), ("e_h", S - 2), ("e_c", S - 2), ("dw", None), None]


def test_compare_trace_on_the_reproduction_itself():
    r = ex.part1(steps=20)
    first = [None if m.ok else (m.first.quantity, m.first.t) for m in r.values()]
    assert first == [("a_i", 1), None, ("a_i", 0)]     # the update inside the loop; no update; the wraparound


# --- compare_trace on planted bugs -------------------------------------------------------------------

def test_a_wrong_forget_bias_from_step_3_is_reported_at_f_t3_not_later(problem):
    p, x, dy = problem
    tr = my_lstm(p, x, dy, ("forget_bias_from_3",))[2]
    r = nplstm.compare_trace({k: tr[k] for k in "ifgoch"}, p, x)
    assert (r.first.name, r.first.t) == ("f", 3)
    assert r.firsts["c"].t == 3 and r.firsts["h"].t == 3 and r.firsts["i"].t == 4 and r.firsts["g"].t == 4
    assert r.equation == (checking.FORWARD["f"]) and "#forward-" in r.anchor
    mine = nplstm.compare_trace({"F": tr["f"], "A_f": tr["a_f"]}, p, x, names={"F": "f", "A_f": "a_f"})
    assert (mine.first.name, mine.first.t) == ("A_f", 3)    # the pre-activation comes first when given
    text = str(r)
    assert "first difference: f (nplstm's f) at t = 3" in text and "f_t = σ(a_f" in text


def test_a_complete_correct_trace_agrees_in_every_quantity(problem):
    p, x, dy = problem
    _, grads, tr = my_lstm(p, x, dy)
    trace = {**{k: v for k, v in tr.items()}, **{"d" + k: g for k, g in grads.items()}}
    r = nplstm.compare_trace(trace, p, x, dy=dy)
    assert r.ok and set(r.order) == set(trace), r
    assert r.order.index("a_f") < r.order.index("c") < r.order.index("dh") < r.order.index("dW")
    layer = nplstm.LSTM(I, H, dtype=np.float64)
    layer.params = {"l0." + k: v for k, v in p.items()}
    assert nplstm.compare_trace(trace, layer, x, dy=dy).ok
    batch_first = {k: (v.transpose(1, 0, 2) if v.ndim == 3 else v) for k, v in trace.items()}
    assert nplstm.compare_trace(batch_first, layer, x.transpose(1, 0, 2), dy=dy.transpose(1, 0, 2),
                                layout={"axes": "bth"}).ok


@pytest.mark.parametrize("bug,given,name,t", [
    ("no_peephole_dc", "dc_prev", "dc", T - 1),
    ("no_carry", "dc_prev", "dc_prev", T - 1),      # born in what step T-1 sends to c_(T-2) ...
    ("no_carry", "", "dc", T - 2),                  # ... and first seen in dc_(T-2) when that is not in the trace
    ("h_t_in_dR", "dc_prev", "dR", None)])
def test_a_backward_bug_is_reported_where_it_is_born(problem, bug, given, name, t):
    p, x, dy = problem
    _, grads, tr = my_lstm(p, x, dy, (bug,))
    trace = {**{k: tr[k] for k in ("dh", "dc", "da_i", "da_f", "da_g", "da_o", given) if k}, "dR": grads["R"]}
    r = nplstm.compare_trace(trace, p, x, dy=dy)
    assert (r.first.name, r.first.t) == (name, t)


def test_torch_autograd_gradients_in_torchs_layout_agree(torch):
    torch.manual_seed(0)
    module = torch.nn.LSTM(I, H, dtype=torch.float64)
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, H))
    h = module(torch.from_numpy(x))[0]
    (h * torch.from_numpy(dy)).sum().backward()
    trace = {"h": h.detach().numpy(), **{"d" + k: v.grad.numpy() for k, v in module.named_parameters()}}
    weights = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    r = nplstm.compare_trace(trace, weights, x, dy=dy, layout="torch")
    assert r.ok, r
    trace["dbias_hh_l0"] = 2 * trace["dbias_hh_l0"]
    assert nplstm.compare_trace(trace, weights, x, dy=dy, layout="torch").first.name == "dbias_hh_l0"


def test_the_quoted_equations_stand_in_docs_math_md_under_their_anchors():
    text = (ROOT / "docs" / "math.md").read_text(encoding="utf-8")
    anchors = {re.sub(r"[^\w\- ]", "", m.lower()).replace(" ", "-") for m in re.findall(r"^#+ (.*)$", text, re.M)}
    for anchor in (checking.FORWARD_ANCHOR, checking.BACKWARD_ANCHOR):
        assert anchor.split("#")[1] in anchors, anchor
    for table in (checking.FORWARD, checking.BACKWARD, checking.GRADIENTS):
        for quantity, lines in table.items():
            for line in lines:
                assert line in text, (quantity, line)


def test_compare_trace_refuses_what_it_cannot_compare(problem):
    p, x, dy = problem
    tr = my_lstm(p, x, dy)[2]
    with pytest.raises(ValueError, match="'e_c': not a quantity nplstm computes"):
        nplstm.compare_trace({"e_c": tr["dc"]}, p, x, dy=dy)
    with pytest.raises(ValueError, match="from the backward pass: pass dy"):
        nplstm.compare_trace({"dc": tr["dc"]}, p, x)
    with pytest.raises(ValueError, match=r"trace\['h'\] is \(4, 2, 5\) as \(T, B, ·\)"):
        nplstm.compare_trace({"h": tr["h"][:, :, :4].transpose(2, 1, 0)}, p, x)
    with pytest.raises(ValueError, match="expected one layer in one direction"):
        nplstm.compare_trace({"h": tr["h"]}, nplstm.LSTM(I, H, num_layers=2), x)
    with pytest.raises(ValueError, match="lstm must be an nplstm.LSTM or a dict"):
        nplstm.compare_trace({"h": tr["h"]}, [p], x)
    with pytest.raises(ValueError, match="no such weight"):
        nplstm.compare_trace({"dp_i": np.zeros(H)}, {k: p[k] for k in "WRb"}, x, dy=dy)
    with pytest.raises(ValueError, match="x has 2 features a step; the weights take I = 3"):
        nplstm.compare_trace({"h": tr["h"]}, p, x[:, :, :2])
    with pytest.raises(ValueError, match="layout: expected None, a preset"):
        nplstm.compare_trace({"h": tr["h"]}, p, x, layout=3)


@pytest.mark.parametrize("variant", ["NFG", "CIFG", "NOG", "NIAF", "NP"])
def test_the_variants_of_an_lstm_layer_agree_with_its_own_forward_and_backward(variant):
    rng = np.random.default_rng(2)
    layer = nplstm.LSTM(I, H, variant=variant, dtype=np.float64, seed=3)
    x, dy = rng.standard_normal((B, T, I)), rng.standard_normal((B, T, H))
    h, _ = layer.forward(x)
    dx, _ = layer.backward(dy)
    inside = layer.internals()["l0"]
    trace = {**{k: inside[k] for k in "ifgoc"}, "h": h, "dx": dx, **{"d" + k[3:]: g for k, g in layer.grads.items()}}
    r = nplstm.compare_trace(trace, layer, x, dy=dy, layout={"axes": "bth"})
    assert r.ok, r
    trace["dx"] = trace["dx"] * 1.001
    assert nplstm.compare_trace(trace, layer, x, dy=dy, layout={"axes": "bth"}).first.name == "dx"
