"""The LSTM engine of this checkout against the one of an earlier commit, in one process, interleaved.

Run:  OPENBLAS_NUM_THREADS=1 python benchmarks/engine_ab.py --against HEAD~1 [--rounds 30] [--size B T I H] [--tiny]

For each size and peephole kind (None, diagonal), the training step (lstm_forward + lstm_backward) and the
inference forward (keep=False) of both engines are called in turn, once per round; the output is the ratio of
the medians, new / old, with the interquartile range of the per-round ratios. Before timing, the outputs
are compared: the forwards and the gradients must agree up to float32 rounding, and the output says whether the
forwards are the same bits (an engine change that only moves work keeps them; one that reorders sums does not). The
earlier engine is read with `git show REV:nplstm/lstm.py` and imported beside this one.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from nplstm import lstm as new  # noqa: E402
from nplstm.workspace import Workspace  # noqa: E402

SIZES = [(1, 100, 8, 32), (16, 100, 16, 64), (64, 100, 32, 128), (32, 50, 64, 256)]  # (B, T, I, H)


def load_old(rev: str):
    """nplstm/lstm.py as of `rev`, imported as a module of its own (its relative imports made absolute)."""
    source = subprocess.run(["git", "show", f"{rev}:nplstm/lstm.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.replace("from .", "from nplstm.")
    path = Path(tempfile.mkdtemp()) / "lstm_old.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("lstm_old", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def engine_fns(m, size, peephole, rng_seed=0):
    B, T, I, H = size
    rng = np.random.default_rng(rng_seed)
    x = rng.standard_normal((T, B, I), dtype=np.float32)
    h0 = c0 = np.zeros((B, H), np.float32)
    W, R = (0.1 * rng.standard_normal(s, dtype=np.float32) for s in ((I, 4 * H), (H, 4 * H)))
    b = np.zeros(4 * H, np.float32)
    p = None if peephole is None else tuple(0.1 * rng.standard_normal(H, dtype=np.float32) for _ in range(3))
    dy = rng.standard_normal((T, B, H), dtype=np.float32)
    ws, sizes = Workspace(), (B,) * T

    def train():
        h, _, cache = m.lstm_forward(x, h0, c0, W, R, b, p, batch_sizes=sizes, peephole=peephole, ws=ws)
        return h.copy(), m.lstm_backward(dy, h0, c0, cache, W, R, p, ws=ws)

    def infer():
        return m.lstm_forward(x, h0, c0, W, R, b, p, batch_sizes=sizes, peephole=peephole, ws=ws, keep=False)[0]
    return train, infer


def check(old_fns, new_fns) -> str:
    """'same bits' when both forwards (training and inference) agree bit for bit, else 'rounding' when they
    agree to float32 rounding; the gradients must agree to rounding either way (AssertionError if not)."""
    (h_o, (dx_o, _, _, g_o)), (h_n, (dx_n, _, _, g_n)) = old_fns[0](), new_fns[0]()
    y_o, y_n = old_fns[1](), new_fns[1]()
    same = np.array_equal(h_o, h_n) and np.array_equal(y_o, y_n)
    for a, b_ in [(h_o, h_n), (y_o, y_n), (dx_o, dx_n)] + [(g_o[k], g_n[k]) for k in g_o]:
        assert np.allclose(a, b_, rtol=1e-4, atol=1e-6 * np.abs(a).max()), "the engines' outputs differ"
    return "same bits" if same else "rounding"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", default="HEAD~1", help="the git revision of the earlier engine")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--size", type=int, nargs=4, action="append", metavar=("B", "T", "I", "H"),
                    help="a size to time instead of the default ones (repeatable)")
    ap.add_argument("--tiny", action="store_true", help="one tiny size, two rounds (a smoke test; the tests run it)")
    args = ap.parse_args(argv)
    sizes, rounds = ([(2, 5, 3, 4)], 2) if args.tiny else ([tuple(s) for s in args.size or SIZES], args.rounds)
    old = load_old(args.against)
    print(f"new = this checkout, old = {args.against}; ratio new / old of the medians of {rounds} "
          "interleaved rounds [IQR of the per-round ratios]")
    for peephole in (None, "diagonal"):
        for size in sizes:
            fo, fn = engine_fns(old, size, peephole), engine_fns(new, size, peephole)
            agree = check(fo, fn)
            t = {k: [] for k in ("train old", "train new", "infer old", "infer new")}
            for _ in range(rounds):
                for key, f in (("train old", fo[0]), ("train new", fn[0]), ("infer old", fo[1]), ("infer new", fn[1])):
                    start = time.perf_counter()
                    f()
                    t[key].append(time.perf_counter() - start)
            cells = []
            for side in ("train", "infer"):
                per = np.array(t[f"{side} new"]) / np.array(t[f"{side} old"])
                ratio = np.median(t[f"{side} new"]) / np.median(t[f"{side} old"])
                cells.append(f"{side} {ratio:.2f} [{np.quantile(per, 0.25):.2f}-{np.quantile(per, 0.75):.2f}]")
            print(f"peephole={str(peephole):8s} (B, T, I, H) = {str(size):18s} " + "  ".join(cells) + f"  ({agree})",
                  flush=True)


if __name__ == "__main__":
    main()
