"""Inference of an exported ONNX model in ONNX Runtime against nplstm's own forward (float32).

Two cells: the vanilla LSTM (diagonal peepholes), which exports as ONNX's LSTM operator and runs in
ONNX Runtime's fused kernel, and full peepholes, which export as a Scan over elementary ops. One
process, the four functions of a size called in turn every round (nplstm.diagnostics.timing.interleaved),
medians. ONNX Runtime gets as many intra-op threads as NumPy's BLAS has (--threads to change it).

Run:  python benchmarks/onnx_inference.py [--repeat N] [--threads N] [--json PATH]
"""
import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from nplstm import LSTM
from nplstm.diagnostics.timing import interleaved
from nplstm.interop.onnx import export

SIZES = [(1, 100, 8, 32), (64, 100, 32, 128), (64, 100, 128, 512)]   # (B, T, I, H)
CELLS = {"vanilla (LSTM op)": "diagonal", "full peepholes (Scan)": "full"}


def blas_threads() -> int:
    """The threads NumPy's BLAS runs: threadpoolctl's count if installed, else OpenBLAS's own rule."""
    try:
        from threadpoolctl import threadpool_info
        counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
        if counts:
            return max(counts)
    except ImportError:
        pass
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return os.cpu_count() or 1               # OpenBLAS's default: every core


def measure(size, threads: int, repeat: int, folder: Path) -> dict:
    B, T, I, H = size
    x = np.random.default_rng(0).standard_normal((B, T, I), dtype=np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    fns = {}
    for cell, peephole in CELLS.items():
        lstm = LSTM(I, H, peephole=peephole, seed=0)
        path = export(lstm, folder / f"{peephole}_{H}.onnx")
        sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        y_onnx, y_np = sess.run(["y"], {"x": x})[0], lstm.forward(x)[0]
        assert np.abs(y_onnx - y_np).max() < 1e-4, (cell, size)   # timing the same numbers
        fns[(cell, "nplstm")] = lambda lstm=lstm: lstm.forward(x)
        fns[(cell, "onnxruntime")] = lambda sess=sess: sess.run(["y"], {"x": x})
    reps = max(5, min(repeat, int(repeat * 2e5 / (B * T * H))))    # fewer rounds at the largest size
    times = interleaved(fns, reps)
    return {"size": size, "repeats": reps, "threads": threads,
            "times": {f"{cell} | {engine}": s for (cell, engine), s in times.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="rounds at the small sizes (default 15)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: BLAS's)")
    parser.add_argument("--json", help="also write the rows as JSON")
    args = parser.parse_args()
    threads = args.threads or blas_threads()
    print(f"NumPy {np.__version__} ({blas_threads()} BLAS threads), onnxruntime {ort.__version__} "
          f"({threads} intra-op threads), {os.cpu_count()} cores; float32, forward only, median ms")
    print(f"{'B, T, I, H':<20}{'cell':<24}{'nplstm':>10}{'onnxruntime':>13}{'ratio':>8}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in SIZES:
            row = measure(size, threads, args.repeat, Path(folder))
            rows.append(row)
            for cell in CELLS:
                t_np, t_ort = row["times"][f"{cell} | nplstm"], row["times"][f"{cell} | onnxruntime"]
                print(f"{str(size):<20}{cell:<24}{t_np * 1e3:>10.2f}{t_ort * 1e3:>13.2f}{t_np / t_ort:>7.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
