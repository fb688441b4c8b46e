"""Benchmark: nplstm against torch.nn.LSTM, torch.nn.GRU and ONNX Runtime, in the same process.

For each size (B, T, I, H), float32, every function below is called once per round, in turn, for at
least 15 rounds after a warm-up (timing.py says why): nplstm's training step (forward, then backward to
every parameter and the input) without, with diagonal and with full peepholes; torch.nn.LSTM's; nplstm.GRU's
and torch.nn.GRU's; and the forward alone, nplstm under no_grad (without and with diagonal peepholes),
torch under no_grad, and ONNX Runtime running nplstm's exported LSTM operator (without and with peepholes).
Each row gives min / median / max, the ratios of medians with their spread, achieved GFLOP/s, two floors
(floors.py, timed in the same rounds), the cache against its formula, inference's peak memory, and what
the finiteness checks cost.
Then scaling rows: the cost per step as T and then B grow. Thread counts are pinned and printed.
Used by `nplstm bench` and benchmarks/lstm_step.py; torch, onnxruntime and threadpoolctl are optional.
"""
from __future__ import annotations

import tempfile
import tracemalloc
from pathlib import Path

import numpy as np

from ..grad import no_grad
from ..layers import LSTM
from .floors import gemm_step, numpy_step
from .timing import SPREAD_WARNING, Ratio, interleaved, interleaved_samples, machine, pinned_threads, timed

SIZES = {  # (B, T, I, H)
    "default": [(1, 100, 8, 32), (16, 100, 16, 64), (64, 100, 32, 128), (32, 50, 64, 256),
                (64, 100, 128, 512), (8, 5000, 8, 64)],
    "tiny": [(2, 10, 3, 8)],
}
SCALING = {  # (B, T, I, H) rows whose cost per step should stay flat: T grows at fixed B, then B at fixed T
    "default": [(16, T, 16, 64) for T in (10, 100, 1000, 10000)] + [(B, 100, 32, 128) for B in (1, 4, 16, 64, 256)],
    "tiny": [(2, 5, 3, 8), (2, 20, 3, 8)],
}
MIN_REPEAT = 15


def step_flops(B, T, I, H, peephole=None) -> float:
    """Multiply-adds ×2 of the GEMMs in one training step.

    Forward: x W and h R, 2·T·B·(I + H)·4H. Backward: δa Wᵀ, δa Rᵀ, xᵀ δa, hᵀ δa, twice that.
    A full peephole adds three (B, H)·(H, H) products per step forward and six backward.
    """
    forward = 2 * T * B * (I + H) * 4 * H
    if peephole == "full":
        forward += 2 * T * B * H * 3 * H
    return 3 * forward


def cache_formula(B, T, I, H) -> int:
    """Elements nplstm keeps for backward, one layer and direction (docs/performance.md):
    the rows [x_t, 1, h_t] for t = 0..T ((T+1)·B·(I+1+H): h including the initial state, and one
    row of x unused), the four gates (T·B·4H), tanh(c_t) (T·B·H), and c including c_0 ((T+1)·B·H)."""
    return (T + 1) * B * (I + 1 + H) + T * B * 5 * H + (T + 1) * B * H


def cache_elements(lstm: LSTM) -> int:
    """Elements of the distinct arrays held in the LSTM's last forward cache."""
    seen, total = set(), 0
    for cache in lstm._cache.caches:
        for a in (cache.x1, cache.gates, cache.c, cache.h, cache.tanh_c):
            base = a if a.base is None else a.base
            if id(base) not in seen:
                seen.add(id(base))
                total += base.size
    return total


def gemm_rate(n: int = 2048, repeat: int = 5) -> float:
    """This machine's float32 GEMM rate in GFLOP/s: best of `repeat` n×n products in NumPy."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    a @ a
    best = min(timed(lambda: a @ a) for _ in range(repeat))
    return 2 * n ** 3 / best / 1e9


def check_cost(size, repeat: int = 7) -> tuple[float, float]:
    """(seconds of one training step, seconds of the finiteness checks it makes), medians.

    The step is the trainer's: Model forward, mse, backward, clip_grad_norm, Adam. The checks are the
    all_finite scans the shells and the optimizer make in it, timed alone on the same arrays: x and
    the parameters at forward, the loss's prediction and target, dy of the head and the LSTM and the
    parameters again at backward, and in Adam the gradients, the new parameters and both moments.
    """
    from .._checks import all_finite
    from ..layers import Linear, Model
    from ..losses import mse
    from ..optim import Adam, clip_grad_norm

    B, T, I, H = size
    rng = np.random.default_rng(0)
    model = Model(LSTM(I, H, seed=0), Linear(H, 1, seed=1))
    x, y = rng.standard_normal((B, T, I), dtype=np.float32), rng.standard_normal((B, T, 1), dtype=np.float32)
    opt = Adam(1e-3)

    def step():
        out = model.forward(x)
        _, dout = mse(out, y)
        model.backward(dout)
        clip_grad_norm(model.grads, 1.0)
        opt.step(model.params, model.grads)
        return out, dout
    out, dout = step()
    dy = np.ones((B, T, H), np.float32)
    params, grads, state = list(model.params.values()), list(model.grads.values()), \
        [a for s in opt.state.values() for a in s]

    def checks():
        for a in (x, out, y, dout, dy, *params, *params, *params, *grads, *state):
            all_finite(a)
    times = interleaved({"step": step, "checks": checks}, repeat, warm_up=False)   # step ran once above
    return times["step"], times["checks"]


def _lstm_fns(size, x, dy) -> dict:
    """nplstm's training steps (peepholes None, diagonal, full) and forwards under no_grad (None, diagonal)."""
    B, T, I, H = size
    fns = {}
    for peephole in (None, "diagonal", "full"):
        lstm = LSTM(I, H, peephole=peephole, seed=0)

        def train(lstm=lstm):
            lstm.forward(x)
            lstm.backward(dy)
        fns[f"train {peephole}"] = train
        if peephole != "full":
            def infer(lstm=lstm):
                with no_grad():
                    lstm.forward(x)
            fns[f"infer {peephole}"] = infer
    return fns


def _torch_fns(torch, size, x, dy) -> dict:
    """torch.nn.LSTM's and torch.nn.GRU's training steps (against nplstm.GRU's) and nn.LSTM's forward."""
    from ..gru import GRU
    B, T, I, H = size
    lstm, gru_t, gru = torch.nn.LSTM(I, H, batch_first=True), torch.nn.GRU(I, H, batch_first=True), GRU(I, H, seed=0)
    tx, tdy = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)

    def step(module):
        module.zero_grad(set_to_none=True)
        tx.grad = None
        module(tx)[0].backward(tdy)

    def infer():
        with torch.no_grad():
            lstm(tx)

    def gru_train():
        gru.forward(x)
        gru.backward(dy)
    return {"torch train": lambda: step(lstm), "torch infer": infer,
            "gru train": gru_train, "torch gru train": lambda: step(gru_t)}


def _ort_fns(size, x, threads: int, folder: Path) -> dict:
    """ONNX Runtime's forward of nplstm's LSTM exported as ONNX's LSTM operator, without and with
    (diagonal) peepholes, checked to give nplstm's numbers before it is timed."""
    import onnxruntime as ort

    from ..interop.onnx import export
    B, T, I, H = size
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    fns = {}
    for peephole in (None, "diagonal"):
        lstm = LSTM(I, H, peephole=peephole, seed=0)
        path = export(lstm, folder / f"{peephole}_{B}_{T}_{I}_{H}.onnx")
        sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        with no_grad():
            ours = lstm.forward(x)[0]
        if np.abs(sess.run(["y"], {"x": x})[0] - ours).max() > 1e-4:
            raise RuntimeError(f"ONNX Runtime's output differs from nplstm's at {size}, peephole={peephole}")
        fns[f"ort infer {peephole}"] = lambda sess=sess: sess.run(["y"], {"x": x})
    return fns


def inference_peak(size) -> float:
    """Peak bytes allocated during a warm no_grad forward of one LSTM layer, over output + weights."""
    B, T, I, H = size
    lstm = LSTM(I, H, seed=0)
    x = np.random.default_rng(0).standard_normal((B, T, I), dtype=np.float32)
    with no_grad():
        lstm.forward(x)
        tracemalloc.start()
        tracemalloc.reset_peak()
        lstm.forward(x)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / (B * T * H * 4 + sum(p.nbytes for p in lstm.params.values()))


# (row key, numerator, denominator): ratios of medians, each with its spread
RATIOS = [("train_ratio", "train None", "torch train"), ("gru_ratio", "gru train", "torch gru train"),
          ("infer_ratio", "infer None", "torch infer"), ("ort_ratio", "infer None", "ort infer None"),
          ("ort_peephole_ratio", "infer diagonal", "ort infer diagonal"),
          ("diagonal_over_none", "train diagonal", "train None"), ("full_over_none", "train full", "train None"),
          ("infer_diagonal_over_none", "infer diagonal", "infer None"),
          ("floor_ratio", "gemm floor train", "torch train"), ("infer_floor_ratio", "gemm floor infer", "torch infer"),
          ("numpy_floor_ratio", "numpy floor train", "torch train"),
          ("infer_numpy_floor_ratio", "numpy floor infer", "torch infer"),
          ("infer_numpy_floor_over_ort", "numpy floor infer", "ort infer None"),
          ("over_numpy_floor", "train None", "numpy floor train"), ("infer_over_numpy_floor", "infer None", "numpy floor infer")]


def measure(size, *, repeat=MIN_REPEAT, torch=None, ort_threads=None, folder=None, extras=True) -> dict:
    """One row: samples of every function, interleaved; ratios with spreads; floors, cache and memory
    unless extras=False (the scaling rows). torch=None, ort_threads=None: that side is skipped."""
    B, T, I, H = size
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I), dtype=np.float32)
    dy = rng.standard_normal((B, T, H), dtype=np.float32)
    fns = _lstm_fns(size, x, dy)
    if not extras:
        fns = {k: fns[k] for k in ("train None", "infer None")}
    if torch is not None:
        fns.update(_torch_fns(torch, size, x, dy) if extras else
                   {k: v for k, v in _torch_fns(torch, size, x, dy).items() if k in ("torch train", "torch infer")})
    if ort_threads is not None and extras:
        fns.update(_ort_fns(size, x, ort_threads, folder))
    if extras:                               # the floors run in the same rounds, so their ratios are like the others
        fns.update({f"{kind} floor {side}": make(B, T, I, H, forward_only=side == "infer")
                    for kind, make in (("gemm", gemm_step), ("numpy", numpy_step)) for side in ("train", "infer")})
    samples = interleaved_samples(fns, repeat)
    row = {"B": B, "T": T, "I": I, "H": H, "repeats": repeat, "ms": {k: s.ms() for k, s in samples.items()},
           "train_ms": samples["train None"].median * 1e3, "infer_ms": samples["infer None"].median * 1e3}
    for key, a, b in RATIOS:
        if a in samples and b in samples:
            r = Ratio.of(samples[a], samples[b])
            row[key], row[key + "_spread"] = r.value, r.spread
    if "torch train" in samples:
        row["torch_train_ms"], row["torch_infer_ms"] = (samples[k].median * 1e3 for k in ("torch train", "torch infer"))
    if not extras:
        return row
    row["gflops"] = step_flops(B, T, I, H) / samples["train None"].median / 1e9
    row["gemm_floor_ms"] = samples["gemm floor train"].median * 1e3
    row["infer_floor_ms"] = samples["gemm floor infer"].median * 1e3
    row["numpy_floor_ms"] = samples["numpy floor train"].median * 1e3
    row["infer_numpy_floor_ms"] = samples["numpy floor infer"].median * 1e3
    lstm = LSTM(I, H, peephole="diagonal", seed=0)
    lstm.forward(x)
    row["cache_mb"], row["cache_formula_mb"] = cache_elements(lstm) * 4 / 2 ** 20, cache_formula(B, T, I, H) * 4 / 2 ** 20
    row["inference_peak"] = inference_peak(size)
    step_s, checks_s = check_cost(size, repeat=repeat)
    row["checks_fraction"] = checks_s / step_s
    return row


def run(sizes="default", repeat=MIN_REPEAT, threads=None, scaling=True, print_fn=print) -> dict:
    """Run the benchmark over a named grid (or a list of (B, T, I, H)); print the tables; return
    {"machine", "threads", "gemm_rate", "rows", "scaling", "warnings"}."""
    try:
        import torch
    except ImportError:
        torch = None
    name = sizes if isinstance(sizes, str) else None
    grid = SIZES[sizes] if name else sizes
    with pinned_threads(threads) as counts, tempfile.TemporaryDirectory() as folder:
        info = machine()
        rate = gemm_rate()
        print_fn(f"machine: {info['cpu']}, {info['cores']} cores; NumPy {info['numpy']}, torch {info['torch']}, "
                 f"onnxruntime {info['onnxruntime']}, threadpoolctl {info['threadpoolctl']}")
        print_fn(f"threads: BLAS {counts['blas'] or '?'}, torch {counts['torch'] or '-'}, "
                 f"onnxruntime intra-op {counts['onnxruntime'] or '-'}; float32 GEMM rate (NumPy, 2048x2048): {rate:.0f} GFLOP/s")
        print_fn(f"{repeat} interleaved rounds per row after a warm-up; times in ms as median (min-max); "
                 "ratio = nplstm / other, medians, with the spread of the per-round ratios (IQR / median)")
        ort = counts["onnxruntime"] if _has_onnx() else None
        rows = [measure(size, repeat=repeat, torch=torch, ort_threads=ort, folder=Path(folder)) for size in grid]
        _print_rows(rows, print_fn)
        scale = []
        if scaling:
            scale = [measure(size, repeat=repeat, torch=torch, extras=False) for size in SCALING[name or "default"]]
            _print_scaling(scale, print_fn)
    warnings = [f"{r['B']}, {r['T']}, {r['I']}, {r['H']}: {key} spread {100 * r[key + '_spread']:.0f} %"
                for r in rows + scale for key, _, _ in RATIOS if r.get(key + "_spread", 0) > SPREAD_WARNING]
    for w in warnings:
        print_fn(f"warning: ratio not trustworthy in this run (per-round spread > {100 * SPREAD_WARNING:.0f} %): {w}")
    return {"machine": info, "threads": counts, "gemm_rate": rate, "rows": rows, "scaling": scale, "warnings": warnings}


def _has_onnx() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _cell(row, key, w=6, p=2):
    return f"{row[key]:>{w}.{p}f}" if key in row else f"{'-':>{w}}"


def _ratio(row, key, w=6):
    if key not in row:
        return f"{'-':>{w + 6}}"
    spread = 100 * row[key + "_spread"]
    flag = "!" if row[key + "_spread"] > SPREAD_WARNING else " "
    return f"{row[key]:>{w}.2f} {spread:>3.0f}%{flag}" if spread < 999.5 else f"{row[key]:>{w}.2f} >999%"


def _spread_ms(row, key):
    if key not in row["ms"]:
        return f"{'-':<21}"
    m = row["ms"][key]
    return f"{m['median']:.3g} ({m['min']:.3g}-{m['max']:.3g})".ljust(21)


def _size(row):
    return f"{row['B']:>3} {row['T']:>5} {row['I']:>4} {row['H']:>4}"


def _print_rows(rows, print_fn):
    size = f"{'B':>3} {'T':>5} {'I':>4} {'H':>4}"
    print_fn("\ntraining step (forward + backward to every parameter and the input)")
    print_fn(f"{size} | {'nplstm':<21} {'torch':<21} {'ratio spread':>12} | {'GRU/torch':>12} | "
             f"{'diag':>12} {'full':>12} | {'GFLOP/s':>7} {'GEMMs/torch':>12} {'NumPy/torch':>12} {'nplstm/NumPy':>12} | "
             f"{'checks':>6}")
    for r in rows:
        print_fn(f"{_size(r)} | {_spread_ms(r, 'train None')} {_spread_ms(r, 'torch train')} {_ratio(r, 'train_ratio')} | "
                 f"{_ratio(r, 'gru_ratio')} | {_ratio(r, 'diagonal_over_none')} {_ratio(r, 'full_over_none')} | "
                 f"{_cell(r, 'gflops', 7, 1)} {_ratio(r, 'floor_ratio')} {_ratio(r, 'numpy_floor_ratio')} "
                 f"{_ratio(r, 'over_numpy_floor')} | "
                 f"{100 * r['checks_fraction']:>5.1f}%")
    print_fn("\ninference (forward alone: nplstm and torch under no_grad; ONNX Runtime's LSTM operator)")
    print_fn(f"{size} | {'nplstm':<21} {'torch':<21} {'ratio spread':>12} | {'/ORT':>12} {'/ORT peep':>12} | "
             f"{'diag':>12} | {'GEMMs/torch':>12} {'NumPy/torch':>12} {'nplstm/NumPy':>12} | {'cache MB':>8} "
             f"{'formula':>7} | {'peak':>5}")
    for r in rows:
        print_fn(f"{_size(r)} | {_spread_ms(r, 'infer None')} {_spread_ms(r, 'torch infer')} {_ratio(r, 'infer_ratio')} | "
                 f"{_ratio(r, 'ort_ratio')} {_ratio(r, 'ort_peephole_ratio')} | {_ratio(r, 'infer_diagonal_over_none')} | "
                 f"{_ratio(r, 'infer_floor_ratio')} {_ratio(r, 'infer_numpy_floor_ratio')} "
                 f"{_ratio(r, 'infer_over_numpy_floor')} | {_cell(r, 'cache_mb', 8, 1)} {_cell(r, 'cache_formula_mb', 7, 1)} | "
                 f"{_cell(r, 'inference_peak', 5)}")
    print_fn("diag, full = time with peepholes / without; /ORT peep = nplstm with diagonal peepholes / ORT's LSTM "
             "operator with them; GEMMs, NumPy = the floors (diagnostics/floors.py): the BLAS calls alone, and with the fewest "
             "elementwise NumPy calls the equations need; cache = what training keeps for the "
             "backward, against cache_formula; peak = a no_grad forward's peak allocation / (output + weights); "
             "checks = the NaN/Inf scans' share of a training step (check_cost); ! = spread above "
             f"{100 * SPREAD_WARNING:.0f} %")


def _print_scaling(rows, print_fn):
    print_fn("\nscaling: microseconds per time step and per sequence of the batch, (time / (B T)); flat = linear cost")
    print_fn(f"{'B':>3} {'T':>5} {'I':>4} {'H':>4} | {'train':>8} {'torch':>8} {'ratio spread':>12} | "
             f"{'infer':>8} {'torch':>8} {'ratio spread':>12}")
    for r in rows:
        per = lambda key: r["ms"][key]["median"] * 1e3 / (r["B"] * r["T"]) if key in r["ms"] else float("nan")
        print_fn(f"{_size(r)} | {per('train None'):>8.3f} {per('torch train'):>8.3f} {_ratio(r, 'train_ratio')} | "
                 f"{per('infer None'):>8.3f} {per('torch infer'):>8.3f} {_ratio(r, 'infer_ratio')}")


