"""The benchmark runs end to end and its statistics say what they claim (timings themselves are not
asserted: this is not a timed test)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nplstm
from nplstm.diagnostics import bench, timing


@pytest.mark.slow
def test_nplstm_bench_tiny_runs(tmp_path, torch):
    out = subprocess.run([sys.executable, "-m", "nplstm", "bench", "--tiny", "--repeat", "2", "--threads", "1",
                          "--json", str(tmp_path / "rows.json")], capture_output=True, text=True, check=True)
    assert "float32 GEMM rate" in out.stdout and "ratio" in out.stdout and "scaling" in out.stdout
    assert "threads: BLAS 1, torch 1, onnxruntime intra-op 1" in out.stdout   # pinned as asked, and said
    result = json.loads((tmp_path / "rows.json").read_text())
    assert result["threads"] == {"blas": 1, "torch": 1, "onnxruntime": 1}
    rows = result["rows"]
    assert len(rows) == 1 and rows[0]["H"] == 8 and rows[0]["repeats"] == 2
    for key in ("train_ms", "infer_ms", "gemm_floor_ms", "numpy_floor_ms", "infer_floor_ms", "infer_numpy_floor_ms",
                "diagonal_over_none", "full_over_none", "cache_mb", "checks_fraction", "train_ratio", "gru_ratio",
                "infer_ratio", "ort_ratio", "ort_peephole_ratio", "infer_diagonal_over_none", "inference_peak",
                "floor_ratio", "infer_floor_ratio", "numpy_floor_ratio", "infer_numpy_floor_ratio", "over_numpy_floor",
                "infer_over_numpy_floor", "infer_numpy_floor_over_ort"):
        assert rows[0][key] > 0, key
        assert key.endswith(("_ms", "_mb", "fraction", "peak")) or rows[0][key + "_spread"] >= 0, key
    for name in ("train None", "train diagonal", "train full", "torch train", "gru train", "torch gru train",
                 "infer None", "infer diagonal", "torch infer", "ort infer None", "ort infer diagonal",
                 "gemm floor train", "gemm floor infer", "numpy floor train", "numpy floor infer"):
        ms = rows[0]["ms"][name]
        assert 0 < ms["min"] <= ms["median"] <= ms["max"], name
    assert [(r["B"], r["T"]) for r in result["scaling"]] == [(s[0], s[1]) for s in bench.SCALING["tiny"]]


def test_a_ratio_is_the_ratio_of_medians_and_its_spread_the_rounds_disagreement():
    a = timing.Samples((1.0, 2.0, 3.0, 4.0, 5.0))
    b = timing.Samples((1.0, 1.0, 1.0, 1.0, 1.0))
    r = timing.Ratio.of(a, b)
    assert r.value == 3.0
    assert r.spread == pytest.approx((4.0 - 2.0) / 3.0)   # IQR of the per-round ratios 1..5 over their median
    assert not r.trusted
    steady = timing.Ratio.of(timing.Samples((2.0, 2.02, 1.98, 2.0)), timing.Samples((1.0, 1.01, 0.99, 1.0)))
    assert steady.value == pytest.approx(2.0) and steady.spread < 0.01 and steady.trusted
    # a drift that hits both sides alike (the point of interleaving) leaves the ratio's spread at zero
    drift = timing.Ratio.of(timing.Samples((2.0, 4.0, 6.0)), timing.Samples((1.0, 2.0, 3.0)))
    assert drift.value == 2.0 and drift.spread == 0.0


def test_interleaved_calls_every_function_once_per_round_in_turn():
    calls = []
    samples = timing.interleaved_samples({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b"] * 4               # one warm-up round, then three timed ones
    assert all(len(s.seconds) == 3 for s in samples.values())


def test_pinned_threads_limits_blas_and_torch_and_restores_them(torch):
    before = (timing.blas_threads(), torch.get_num_threads())
    with timing.pinned_threads(1) as counts:
        assert counts["blas"] == 1 and counts["torch"] == 1 and counts["onnxruntime"] == 1
        assert timing.blas_threads() == 1 and torch.get_num_threads() == 1
    assert (timing.blas_threads(), torch.get_num_threads()) == before


def test_a_spread_above_the_limit_is_warned_about(monkeypatch):
    lines = []
    monkeypatch.setattr(bench, "SPREAD_WARNING", -1.0)      # every spread (>= 0) is now above the limit
    result = bench.run([(2, 4, 3, 8)], repeat=2, threads=1, scaling=False, print_fn=lines.append)
    assert result["warnings"] and any(line.startswith("warning: ratio not trustworthy") for line in lines)


@pytest.mark.parametrize("size", [(1, 7, 3, 5), (4, 30, 8, 16), (8, 5000, 8, 64)])
def test_cache_is_what_the_formula_says(size):
    B, T, I, H = size
    lstm = nplstm.LSTM(I, H, seed=0)
    lstm.forward(np.zeros((B, T, I), np.float32))
    assert bench.cache_elements(lstm) == bench.cache_formula(B, T, I, H)


def test_step_flops_counts_the_gemms():
    # forward: x W (2·T·B·I·4H) + h R (2·T·B·H·4H); backward twice that
    assert bench.step_flops(1, 1, 1, 1) == 3 * 2 * 2 * 4
    assert bench.step_flops(2, 3, 4, 5, "full") == 3 * (2 * 3 * 2 * 9 * 20 + 2 * 3 * 2 * 5 * 15)


def test_nplstm_bench_variants_tiny_runs(tmp_path):
    out = subprocess.run([sys.executable, "-m", "nplstm", "bench", "--tiny", "--variants", "--repeat", "2",
                          "--json", str(tmp_path / "rows.json")], capture_output=True, text=True, check=True)
    assert "vanilla" in out.stdout and "FGR" in out.stdout
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert len(rows) == 1 and rows[0]["vanilla_ms"] > 0
    assert {k for k in rows[0] if k.endswith("_over_vanilla")} == {f"{n}_over_vanilla" for n in nplstm.lstm.VARIANTS
                                                                   if n != "vanilla"}


def test_nplstm_bench_gru_tiny_runs(tmp_path, torch):
    subprocess.run([sys.executable, "-m", "nplstm", "bench", "--tiny", "--gru", "--repeat", "2",
                    "--json", str(tmp_path / "rows.json")], capture_output=True, text=True, check=True)
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert len(rows) == 1 and rows[0]["gru_ms"] > 0 and rows[0]["torch_gru_ms"] > 0


def test_engine_ab_runs_against_a_commit_and_checks_the_outputs_first():
    """benchmarks/engine_ab.py imports the engine of a git revision beside this one and compares their
    outputs before timing them; against HEAD the two are the same code, so the check must pass."""
    root = Path(__file__).resolve().parents[1]
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True).returncode:
        pytest.fail("benchmarks/engine_ab.py needs the git history of this checkout")
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "engine_ab.py"), "--against", "HEAD", "--tiny"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line for line in out.splitlines() if line.startswith("peephole=")]
    assert len(rows) == 2 and all("train" in r and "infer" in r for r in rows), out


def test_bench_tables_turns_runs_into_ranges(tmp_path):
    """tools/bench_tables.py prints each cell as the range over the runs, a ratio with its largest spread."""
    root = Path(__file__).resolve().parents[1]
    row = {"B": 1, "T": 2, "I": 3, "H": 4, "inference_peak": 1.5, "checks_fraction": 0.05, "gflops": 1.0,
           "train_ms": 2.0, "torch_train_ms": 1.0, "infer_ms": 1.0, "torch_infer_ms": 0.5}
    for key in ("train_ratio", "gru_ratio", "infer_ratio", "ort_ratio", "ort_peephole_ratio", "diagonal_over_none",
                "full_over_none", "infer_diagonal_over_none", "floor_ratio", "infer_floor_ratio", "numpy_floor_ratio",
                "infer_numpy_floor_ratio", "over_numpy_floor", "infer_over_numpy_floor", "infer_numpy_floor_over_ort"):
        row[key], row[key + "_spread"] = 2.0, 0.1
    runs = []
    for k, ratio in enumerate((1.5, 2.5)):
        path = tmp_path / f"run{k}.json"
        path.write_text(json.dumps({"rows": [dict(row, train_ratio=ratio, train_ratio_spread=0.1 * (k + 1))],
                                    "scaling": []}))
        runs.append(str(path))
    out = subprocess.run([sys.executable, str(root / "tools" / "bench_tables.py"), *runs],
                         capture_output=True, text=True, check=True).stdout
    assert "| (1, 2, 3, 4) | 1.50–2.50 (20 %) | 2.00 (10 %) |" in out, out
    assert "| NumPy floor / torch, training |" in out and out.count("| 2.00 (10 %) | 2.00 (10 %) |") >= 2, out


@pytest.mark.parametrize("size", [(2, 5, 3, 4), (3, 4, 2, 512)])   # H = 512: the two weight-gradient GEMMs
@pytest.mark.parametrize("forward_only", [False, True])
@pytest.mark.parametrize("fused", [False, True])
def test_the_floors_run_clean_and_the_numpy_floor_adds_the_elementwise_calls(size, forward_only, fused):
    """The floor kernels make their calls without overflow or invalid values (which would time slow paths), and
    the NumPy floor makes the GEMM floor's BLAS calls plus elementwise ones, counted through numpy.matmul."""
    from nplstm.diagnostics import floors
    counts = {}
    real = np.matmul

    def counting(name):
        def matmul(*args, **kwargs):
            counts[name] = counts.get(name, 0) + 1
            return real(*args, **kwargs)
        return matmul
    with np.errstate(all="raise"):
        for name, make in (("gemm", floors._gemm_step), ("numpy", floors._numpy_step)):
            step = make(*size, forward_only, fused)
            floors.np.matmul = counting(name)
            try:
                step()
            finally:
                floors.np.matmul = real
    B, T, I, H = size
    S = max(1, min(T, floors.CHUNK // (B * 4 * H)))
    forward = T if fused else -(-T // S) + T      # [x_t, 1, h_{t-1}] [W; b; R] a step, or x W a chunk and h R a step
    assert counts["gemm"] == counts["numpy"] == forward + (0 if forward_only else T)   # and δa Rᵀ a step
    assert floors.gemm_floor(*size, repeat=1, forward_only=forward_only) > 0
    assert floors.numpy_floor(*size, repeat=1, forward_only=forward_only) > 0
