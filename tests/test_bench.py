"""The benchmark runs end to end (timings are not asserted: this is not a timed test)."""
import json
import subprocess
import sys

import numpy as np
import pytest

import nplstm
from nplstm.diagnostics import bench


@pytest.mark.slow
def test_nplstm_bench_tiny_runs(tmp_path):
    out = subprocess.run([sys.executable, "-m", "nplstm", "bench", "--tiny", "--repeat", "2",
                          "--json", str(tmp_path / "rows.json")], capture_output=True, text=True, check=True)
    assert "float32 GEMM rate" in out.stdout and "ratio" in out.stdout
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert len(rows) == 1 and rows[0]["H"] == 8
    for key in ("train_ms", "infer_ms", "gemm_floor_ms", "diagonal_over_none", "full_over_none", "cache_mb",
                "checks_fraction"):
        assert rows[0][key] > 0


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
