"""The benchmark generators against their papers' definitions, and their success criteria."""
import json
import math
import re
from collections import Counter

import numpy as np
import pytest

import nplstm
from nplstm.tasks import TASKS, Batch, make_task, next_symbol_sets, possible_next

BENCHMARKS = [n for n in TASKS if n not in ("series", "sequences")]   # your own data: tests/test_your_data*.py

SMALL = {"noise_free_lag": {"p": 10}, "timing": {"T": 120, "t_min": 5, "t_max": 20}, "copy": {"T": 10},
         "adding": {"T": 20}}


def ids_of(x):
    """One-hot (B, T, C) -> ids (B, T), -1 where the row is all zeros (padding)."""
    return np.where(x.any(-1), x.argmax(-1), -1)


# --- adding ---------------------------------------------------------------------------------

def test_adding_1997_layout_markers_and_target():
    T, B = 100, 3000
    batch = make_task("adding", T=T).batch(np.random.default_rng(0), B)
    values, marker = batch.x[..., 0], batch.x[..., 1]
    L = batch.lengths
    assert batch.x.dtype == np.float32 and batch.lengths.dtype == np.int64 and batch.y.shape == (B, 1)
    assert L.min() == T and L.max() == T + T // 10                 # the full range [T, T + T/10] occurs
    inside = np.arange(batch.x.shape[1]) < L[:, None]
    assert not batch.x[~inside].any()                               # zero padding past each length
    assert np.all(np.abs(values) <= 1)
    marks = marker == 1
    assert np.all(marks.sum(1) == 2)
    first = marks.argmax(1)
    second = marks.shape[1] - 1 - marks[:, ::-1].argmax(1)
    assert first.min() == 0 and np.all(first <= T // 2 - 1)
    assert np.all(marks[:, :10].any(1))                            # one mark among the first ten
    assert second.max() == T // 2 - 1                               # the other among the first T/2 - 1 unmarked
    rows = np.arange(B)
    assert np.all(marker[~marks[:, 0], 0] == -1)                    # -1 at the first step unless marked
    assert np.all(marker[rows, L - 1] == -1)                        # and at the last step
    other = inside & ~marks
    other[:, 0] = False
    other[rows, L - 1] = False
    assert not marker[other].any()
    assert marks[:, 0].sum() > 100 and np.all(values[marks[:, 0], 0] == 0)   # X1 = 0 when step 0 is marked
    target = 0.5 + (values * marks).sum(1) / 4
    assert np.allclose(batch.y[:, 0], target, atol=1e-6)


def test_adding_modern_layout_and_baseline():
    T, B = 50, 20000
    task = make_task("adding", T=T, form="modern")
    batch = task.batch(np.random.default_rng(1), B)
    values, marker = batch.x[..., 0], batch.x[..., 1]
    assert batch.x.shape == (B, T, 2) and batch.lengths is None
    assert values.min() >= 0 and values.max() <= 1 and set(np.unique(marker)) == {0.0, 1.0}
    assert np.all(marker[:, :T // 2].sum(1) == 1) and np.all(marker[:, T // 2:].sum(1) == 1)
    assert np.allclose(batch.y[:, 0], (values * marker).sum(1), atol=1e-6)
    mean_guess = task.evaluate(np.ones((B, 1), np.float32), batch)
    assert mean_guess["baseline_mse"] == pytest.approx(1 / 6)
    assert mean_guess["mse"] == pytest.approx(1 / 6, abs=0.005)     # predicting the mean gives 1/6


# --- temporal order -------------------------------------------------------------------------

@pytest.mark.parametrize("experiment,windows", [("6a", [(10, 20), (50, 60)]),
                                             ("6b", [(10, 20), (33, 43), (66, 76)])])
def test_temporal_order_positions_and_label_rule(experiment, windows):
    task = make_task("temporal_order", experiment=experiment)
    batch = task.batch(np.random.default_rng(2), 500)
    ids, L = ids_of(batch.x), batch.lengths
    assert task.output_size == 2 ** len(windows) and batch.y.dtype == np.int64
    assert L.min() == 100 and L.max() == 110 and np.all(ids[np.arange(ids.shape[1]) >= L[:, None]] == -1)
    symbols = np.array(list("abcdXYBE"))
    for row, n, label in zip(ids, L, batch.y):
        s = "".join(symbols[row[:n]])
        assert s[0] == "E" and s[-1] == "B" and set(s[1:-1]) <= set("abcdXY")
        relevant = [t for t, c in enumerate(s) if c in "XY"]
        assert len(relevant) == len(windows)
        assert all(lo <= t <= hi for t, (lo, hi) in zip(relevant, windows))
        pattern = "".join(s[t] for t in relevant)                  # XX -> 0 (Q), XY -> 1 (R), ...
        assert label == int(pattern.replace("X", "0").replace("Y", "1"), 2)
    assert set(batch.y) == set(range(task.output_size))


# --- embedded Reber -------------------------------------------------------------------------
# An independent checker: the embedded Reber language as a regular expression, derived from
# the grammar's figure rather than from the automaton in nplstm.tasks.reber.
_FROM_4 = r"(?:XT*VP)*(?:S|XT*VV)"
_REBER = rf"B(?:TS*X{_FROM_4}|PT*V(?:V|P{_FROM_4}))E"
EMBEDDED = re.compile(rf"B(?:T{_REBER}T|P{_REBER}P)E")


def test_reber_checker_itself_on_published_examples():
    reber = re.compile(_REBER)
    for s in ["BTSSXXTVVE", "BPVVE", "BTXXVPSE", "BPVPXVPXVPXVVE", "BTSXXVPSE"]:
        assert reber.fullmatch(s)
    for s in ["BTSSPXSE", "BPTVVB", "BTXXVVSE", "BPVSPSE", "BTSSSE"]:
        assert not reber.fullmatch(s)


def test_reber_strings_are_in_the_language_and_batches_spell_them():
    task = make_task("reber")
    assert len(task.train_strings) == len(task.test_strings) == 256
    assert task.train_strings != task.test_strings
    for s in task.train_strings + task.test_strings:
        assert EMBEDDED.fullmatch(s), s
    batch = task.train_set()
    ids = ids_of(batch.x)
    for row, n, s in zip(ids, batch.lengths, task.train_strings):
        assert "".join("BTPSXVE"[i] for i in row[:n]) == s
    # y is the next symbol at every step that has one; the mask covers exactly those steps
    assert np.array_equal(batch.mask, np.arange(ids.shape[1]) < (batch.lengths - 1)[:, None])
    assert np.array_equal(batch.y[:, :-1][batch.mask[:, :-1]], ids[:, 1:][batch.mask[:, :-1]])
    assert np.all(np.take_along_axis(batch.extra["possible"], batch.y[..., None], -1)[..., 0][batch.mask])


def test_reber_possible_next_symbols_on_a_hand_worked_string():
    s = "BTBTXSETE"                                                # inner Reber string BTXSE
    assert next_symbol_sets(s) == ["TP", "B", "TP", "SX", "SX", "E", "T", "E", ""]
    multi_hot = possible_next([s, "BPBPVVEPE"])
    assert multi_hot.shape == (2, 9, 7)
    assert ["".join("BTPSXVE"[i] for i in np.flatnonzero(row)) for row in multi_hot[0]] == \
        ["TP", "B", "TP", "SX", "SX", "E", "T", "E", ""]
    assert "".join("BTPSXVE"[i] for i in np.flatnonzero(multi_hot[1, 6])) == "P"   # the repeat is remembered
    with pytest.raises(ValueError, match="position 7"):
        next_symbol_sets("BTBTXSEPE")                              # the repeat must match the branch


def test_reber_batch_samples_the_training_strings():
    task = make_task("reber", n_train=5)
    batch = task.batch(np.random.default_rng(3), 64)
    spelled = {"".join("BTPSXVE"[i] for i in row[:n]) for row, n in zip(ids_of(batch.x), batch.lengths)}
    assert spelled <= set(task.train_strings) and len(spelled) > 1


# --- continual embedded Reber ---------------------------------------------------------------

def test_continual_reber_streams_continue_across_calls():
    task = make_task("continual_reber", T=37)
    rng = np.random.default_rng(4)
    chunks = [task.batch(rng, 3) for _ in range(6)]
    assert chunks[0].extra["new_streams"] and not any(c.extra["new_streams"] for c in chunks[1:])
    for before, after in zip(chunks, chunks[1:]):                  # the last target is the next input
        assert np.array_equal(before.y[:, -1], ids_of(after.x)[:, 0])
    streams = np.concatenate([ids_of(c.x) for c in chunks], axis=1)
    targets = np.concatenate([c.y for c in chunks], axis=1)
    assert np.array_equal(streams[:, 1:], targets[:, :-1])
    for row in streams:
        s = "".join("BTPSXVE"[i] for i in row)
        end = max(t for t in range(len(s) - 1) if s[t:t + 2] == "EB")          # last complete string
        assert re.fullmatch(rf"(?:{EMBEDDED.pattern})+", s[:end + 1])
    assert len({"".join(map(str, row)) for row in streams}) == 3                 # three distinct streams
    for c in chunks:
        assert np.all(np.take_along_axis(c.extra["possible"], c.y[..., None], -1))
        assert np.all(np.isin(c.y[c.extra["tp"]], [1, 2]))                       # closing T or P

    assert task.batch(rng, 2).extra["new_streams"]                # another batch size: its own streams
    assert not task.batch(rng, 3).extra["new_streams"]
    task.reset_streams()
    assert task.batch(rng, 3).extra["new_streams"]


def test_continual_reber_state_round_trips_through_json():
    task, rng = make_task("continual_reber", T=25), np.random.default_rng(12)
    task.batch(rng, 4)
    saved, rng_saved = json.loads(json.dumps(task.get_state())), rng.bit_generator.state
    expected = task.batch(rng, 4)
    restored = make_task("continual_reber", T=25)
    restored.set_state(saved)
    rng.bit_generator.state = rng_saved
    again = restored.batch(rng, 4)
    assert_same(again, expected)
    assert not again.extra["new_streams"]
    for key in ("possible", "tp"):
        assert np.array_equal(again.extra[key], expected.extra[key])


def test_continual_reber_test_stream():
    test = make_task("continual_reber").test_set()
    assert test.x.shape == (1, 10_000, 7) and test.mask.all()
    assert ids_of(test.x)[0, 0] == 0 and test.extra["tp"].sum() > 500


# --- noise-free sequences -------------------------------------------------------------------

def test_noise_free_lag_sequences():
    p = 100
    task = make_task("noise_free_lag")
    test = task.test_set()
    ids = ids_of(test.x)
    assert ids.shape == (2, p + 1) and task.input_size == p + 1
    middle = np.arange(p - 1)                                      # a_1 ... a_{p-1}
    assert ids[0, 0] == ids[0, -1] == p and ids[1, 0] == ids[1, -1] == p - 1     # y...y and x...x
    assert np.array_equal(ids[0, 1:-1], middle) and np.array_equal(ids[1, 1:-1], middle)
    assert np.array_equal(test.y[:, :-1], ids[:, 1:]) and test.mask[:, :-1].all() and not test.mask[:, -1].any()
    firsts = ids_of(task.batch(np.random.default_rng(5), 2000).x)[:, 0]
    assert set(firsts) == {p - 1, p} and abs((firsts == p).mean() - 0.5) < 0.05


# --- copy memory ----------------------------------------------------------------------------

def test_copy_layout():
    T = 7
    batch = make_task("copy", T=T).batch(np.random.default_rng(6), 300)
    ids = ids_of(batch.x)
    assert ids.shape == (300, T + 20) and batch.mask.all()
    assert ids[:, :10].max() <= 7 and set(np.unique(ids[:, :10])) == set(range(8))
    assert np.all(ids[:, 10:T + 9] == 8) and np.all(ids[:, T + 9] == 9) and np.all(ids[:, T + 10:] == 8)
    assert np.all(batch.y[:, :T + 10] == 8) and np.array_equal(batch.y[:, T + 10:], ids[:, :10])


def test_copy_baseline_matches_the_memoryless_strategy():
    T = 30
    task = make_task("copy", T=T)
    batch = task.batch(np.random.default_rng(7), 50)
    logits = np.full(batch.y.shape + (10,), -1e4, np.float64)
    logits[:, :T + 10, 8] = 1e4                                     # blank, certain, before the delimiter
    logits[:, T + 10:, :8] = 0.0                                    # then a uniform guess over 8 symbols
    empirical, _ = nplstm.softmax_cross_entropy(logits, batch.y)
    assert task.baseline_xent == pytest.approx(10 * math.log(8) / (T + 20))
    assert empirical == pytest.approx(task.baseline_xent, rel=1e-9)
    assert task.evaluate(logits, batch)["loss"] == pytest.approx(task.baseline_xent, rel=1e-9)


# --- timing ---------------------------------------------------------------------------------

def test_spike_delays_layout():
    task = make_task("timing", T=300, t_min=5, t_max=20)
    batch = task.batch(np.random.default_rng(8), 200)
    gaps_seen = set()
    for x, y, mask in zip(batch.x[..., 0], batch.y[..., 0], batch.mask):
        spikes = np.flatnonzero(x)
        assert spikes[0] == 0 and set(np.unique(x)) == {0.0, 1.0}
        gaps = np.diff(spikes)
        assert gaps.min() >= 5 and gaps.max() <= 20 and 300 - spikes[-1] <= 20   # no room left for another
        assert np.array_equal(np.flatnonzero(mask), spikes[1:])
        assert np.allclose(y[spikes[1:]] * 20, gaps) and not y[~mask].any()
        gaps_seen |= set(gaps)
    assert gaps_seen == set(range(5, 21))


# --- character language model ---------------------------------------------------------------

JAPANESE = ("吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。"
            "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。")


@pytest.fixture
def japanese_file(tmp_path):
    path = tmp_path / "neko.txt"
    rng = np.random.default_rng(9)
    sentences = [s + "。" for s in JAPANESE.split("。") if s]
    path.write_text("\n".join("".join(rng.choice(sentences, 3)) for _ in range(400)), encoding="utf-8")
    return path


def test_charlm_japanese_round_trip_and_entropies(japanese_file):
    task = make_task("charlm", path=str(japanese_file), T=20)
    text = japanese_file.read_text(encoding="utf-8")
    assert task.vocab == tuple(sorted(set(text))) and "猫" in task.vocab and task.vocab_size == len(task.vocab)
    ids = task.encode(JAPANESE)
    assert len(ids) == len(JAPANESE) and task.decode(ids) == JAPANESE     # characters, not bytes
    with pytest.raises(ValueError, match="'犬'"):
        task.encode("犬")
    h1, h2 = task.unigram_entropy(), task.bigram_entropy()
    assert h2 < h1 < math.log(len(task.vocab))

    # the same estimates, counted independently: add-one smoothing on the first 90% of the text
    split = int(0.9 * len(text))
    train, held, V = text[:split], text[split:], len(task.vocab)
    uni, bi, first = Counter(train), Counter(zip(train, train[1:])), Counter(train[:-1])
    assert h1 == pytest.approx(-np.mean([math.log((uni[c] + 1) / (len(train) + V)) for c in held]))
    assert h2 == pytest.approx(-np.mean([math.log((bi[a, b] + 1) / (first[a] + V)) for a, b in zip(held, held[1:])]))

    batch = task.batch(np.random.default_rng(10), 8)
    assert batch.x.shape == (8, 20) and batch.x.dtype == np.int64       # character ids, for the Embedding
    assert np.array_equal(batch.x[:, 1:], batch.y[:, :-1]) and batch.x.max() < V
    test = task.test_set()
    assert np.array_equal(test.y[0], task.encode(held[1:21]))         # held-out text, shifted by one


def test_charlm_default_corpus_is_the_python_topics():
    from pydoc_data.topics import topics
    task = make_task("charlm")
    assert "\n\n".join(topics[k] for k in sorted(topics)).startswith(task.decode(task.train_ids[:200]))
    assert len(task.vocab) > 50 and task.bigram_entropy() < task.unigram_entropy()


# --- every task: determinism, criteria, errors ----------------------------------------------

def small_task(name, **options):
    return make_task(name, **{**SMALL.get(name, {}), **options})


def perfect_outputs(task, batch):
    """Outputs that meet the task's criterion exactly: the targets, or logits peaked on them."""
    if task.loss == "mse":
        return batch.y.copy()
    if batch.extra and "possible" in batch.extra:                   # top-k: every possible symbol high
        return 20.0 * batch.extra["possible"]
    return 20.0 * np.eye(task.output_size)[batch.y]


def assert_same(a: Batch, b: Batch):
    for field in ("x", "y", "mask", "lengths"):
        u, v = getattr(a, field), getattr(b, field)
        assert (u is None and v is None) or np.array_equal(u, v), field


@pytest.mark.parametrize("name", BENCHMARKS)
def test_same_seed_same_batches_and_a_fixed_test_set(name):
    first = small_task(name).batch(np.random.default_rng(11), 4)
    assert_same(first, small_task(name).batch(np.random.default_rng(11), 4))
    task = small_task(name)
    a, b = task.test_set(), task.test_set()
    assert_same(a, b)
    assert_same(a, small_task(name).test_set())
    assert not a.x.flags.writeable                                   # the cached set cannot be altered
    if name not in ("noise_free_lag", "charlm"):                     # their test sets use no randomness
        assert not np.array_equal(a.x, small_task(name, seed=1).test_set().x)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_evaluate_perfect_outputs_solve_and_constant_outputs_do_not(name):
    task = small_task(name)
    batch = task.test_set()
    shape = batch.y.shape if task.loss == "mse" else batch.y.shape + (task.output_size,)
    perfect = task.evaluate(perfect_outputs(task, batch), batch)
    constant = task.evaluate(np.full(shape, float(np.mean(batch.y)) if task.loss == "mse" else 0.0), batch)
    assert perfect["solved"] == 1.0 and constant["solved"] == 0.0
    assert all(isinstance(v, float) for v in perfect.values())
    with pytest.raises(ValueError, match="shape"):
        task.evaluate(np.zeros(shape[:-1] + (shape[-1] + 1,)), batch)


def test_adding_solved_allows_one_wrong_in_2560_but_not_two():
    task = make_task("adding")
    batch = task.test_set()
    out = batch.y.copy()
    out[0] += 0.05
    assert task.evaluate(out, batch)["solved"] == 1.0 and task.evaluate(out, batch)["wrong"] == 1
    out[1] -= 0.05
    assert task.evaluate(out, batch)["solved"] == 0.0


def test_make_task_errors():
    with pytest.raises(ValueError, match="unknown task 'addition'.*adding.*charlm"):
        make_task("addition")
    with pytest.raises(ValueError, match="unknown option.*lenght.*expected some of: T, form, seed"):
        make_task("adding", lenght=100)
    with pytest.raises(ValueError, match=r"T: expected an int >= 10, got 5"):
        make_task("adding", T=5)
    with pytest.raises(ValueError, match=r"form must be one of \('1997', 'modern'\), got 'new'"):
        make_task("adding", form="new")
    with pytest.raises(ValueError, match="experiment"):
        make_task("temporal_order", experiment="6c")
    with pytest.raises(ValueError, match=r"t_max: expected an int >= 30, got 20"):
        make_task("timing", t_min=30, t_max=20)
    with pytest.raises(ValueError, match="readable UTF-8"):
        make_task("charlm", path="/nonexistent/corpus.txt")
    with pytest.raises(ValueError, match="batch_size: expected a positive int, got 0"):
        make_task("copy").batch(np.random.default_rng(0), 0)
