"""Benchmark: one LSTM training step in nplstm against torch.nn.LSTM, in the same process.

For each size (B, T, I, H), float32: a training step (forward, then backward to every
parameter and the input) and an inference step (forward only), timed alternately for
nplstm and torch after warm-up, medians over repetitions. Reports the ratio nplstm/torch,
achieved GFLOP/s, the fraction of this machine's measured float32 GEMM rate, the bytes held
by nplstm's cache against the formula in docs/performance.md, and the cost of peepholes.
Used by `nplstm bench` and benchmarks/lstm_step.py. torch is optional.
"""
from __future__ import annotations

import os
import platform
import time

import numpy as np

from ..layers import LSTM
from ..lstm import CHUNK

SIZES = {  # (B, T, I, H)
    "default": [(1, 100, 8, 32), (16, 100, 16, 64), (64, 100, 32, 128), (32, 50, 64, 256),
                (64, 100, 128, 512), (8, 5000, 8, 64)],
    "tiny": [(2, 10, 3, 8)],
}


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
    [x, 1] (T·B·(I+1)), the four gates (T·B·4H), tanh(c_t) (T·B·H), and h, c including the
    initial state (2·(T+1)·B·H)."""
    return T * B * (I + 1 + 5 * H) + 2 * (T + 1) * B * H


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
    best = min(_timed(lambda: a @ a) for _ in range(repeat))
    return 2 * n ** 3 / best / 1e9


def gemm_floor(B, T, I, H, repeat=5, forward_only=False) -> float:
    """Seconds for the BLAS calls of one training step (or forward) alone, shaped as lstm.py makes them.

    No elementwise work: the time an LSTM built on NumPy's BLAS cannot go below.
    """
    rng = np.random.default_rng(0)
    x2, W = rng.random((T * B, I), dtype=np.float32), rng.random((I, 4 * H), dtype=np.float32)
    R, R_T = rng.random((H, 4 * H), dtype=np.float32), rng.random((4 * H, H), dtype=np.float32)
    h, da = rng.random((B, H), dtype=np.float32), rng.random((T * B, 4 * H), dtype=np.float32)
    hs, rec = rng.random((T * B, H), dtype=np.float32), np.empty((B, 4 * H), np.float32)
    dh, W_T = np.empty((B, H), np.float32), np.ascontiguousarray(W.T)

    S = max(1, min(T, CHUNK // (B * 4 * H)))  # lstm.py projects a chunk of S steps' inputs at once

    def step():
        for s0 in range(0, T, S):
            x2[s0 * B:(s0 + S) * B] @ W      # input projections
        for _ in range(T):
            np.matmul(h, R, out=rec)         # forward recurrence
        if forward_only:
            return
        for t in range(T):
            np.matmul(da[t * B:(t + 1) * B], R_T, out=dh)  # backward recurrence
        x2.T @ da, hs.T @ da, da @ W_T       # dW, dR, dx
    step()
    return min(_timed(step) for _ in range(repeat))


def variant_times(size, repeat: int = 7) -> dict[str, float]:
    """Median seconds of one training step (forward + backward, float32) for each of Greff's variants
    (nplstm.lstm.VARIANTS), timed interleaved in this process after a warm-up."""
    from ..lstm import VARIANTS
    B, T, I, H = size
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I), dtype=np.float32)
    dy = rng.standard_normal((B, T, H), dtype=np.float32)
    fns = {}
    for name in VARIANTS:
        lstm = LSTM(I, H, variant=name, seed=0)

        def train(lstm=lstm):
            lstm.forward(x)
            lstm.backward(dy)
        fns[name] = train
    return interleaved(fns, repeat)


def run_variants(sizes, repeat: int = 7, print_fn=print) -> list[dict]:
    """Each variant's training step against the vanilla LSTM's, per size: the rows of `nplstm bench --variants`."""
    from ..lstm import VARIANTS
    print_fn("training step of each variant / vanilla (diagonal peepholes, forget gate), float32, medians")
    print_fn(f"{'B':>3} {'T':>5} {'I':>4} {'H':>4} | {'vanilla ms':>10} | " + " ".join(f"{n:>6}" for n in VARIANTS
                                                                                  if n != "vanilla"))
    rows = []
    for size in sizes:
        t = variant_times(size, repeat)
        row = {"B": size[0], "T": size[1], "I": size[2], "H": size[3], "vanilla_ms": t["vanilla"] * 1e3,
               **{f"{n}_over_vanilla": t[n] / t["vanilla"] for n in t if n != "vanilla"}}
        rows.append(row)
        print_fn(f"{size[0]:>3} {size[1]:>5} {size[2]:>4} {size[3]:>4} | {row['vanilla_ms']:>10.2f} | "
                 + " ".join(f"{row[f'{n}_over_vanilla']:>6.2f}" for n in t if n != "vanilla"))
    return rows


def run_gru(sizes, repeat: int = 9, threads=None, print_fn=print) -> list[dict]:
    """One GRU training step (forward + backward to every parameter and x, float32) of nplstm.GRU
    against torch.nn.GRU, interleaved in this process, medians: the rows of `nplstm bench --gru`."""
    import torch

    from ..gru import GRU
    if threads:
        torch.set_num_threads(threads)
    print_fn(f"GRU training step, float32, medians of {repeat}; torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads")
    print_fn(f"{'B':>3} {'T':>5} {'I':>4} {'H':>4} | {'nplstm ms':>9} {'torch ms':>9} {'ratio':>6}")
    rows = []
    for B, T, I, H in sizes:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((B, T, I), dtype=np.float32)
        dy = rng.standard_normal((B, T, H), dtype=np.float32)
        gru, module = GRU(I, H, seed=0), torch.nn.GRU(I, H, batch_first=True)
        tx, tdy = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)

        def ours():
            gru.forward(x)
            gru.backward(dy)

        def theirs():
            module.zero_grad(set_to_none=True)
            tx.grad = None
            module(tx)[0].backward(tdy)
        ms = {k: v * 1e3 for k, v in interleaved({"nplstm": ours, "torch": theirs}, repeat).items()}
        rows.append({"B": B, "T": T, "I": I, "H": H, "gru_ms": ms["nplstm"], "torch_gru_ms": ms["torch"],
                     "gru_ratio": ms["nplstm"] / ms["torch"]})
        print_fn(f"{B:>3} {T:>5} {I:>4} {H:>4} | {ms['nplstm']:>9.2f} {ms['torch']:>9.2f} {rows[-1]['gru_ratio']:>6.2f}")
    return rows


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


def interleaved(fns: dict, repeat: int, warm_up: bool = True) -> dict:
    """Median seconds of each function, {key: fn} -> {key: s}: after one warm-up call each (allocations,
    BLAS thread start, caches), `repeat` rounds that call every function in turn, so that drifts in the
    machine's speed hit them all alike."""
    if warm_up:
        for fn in fns.values():
            fn()
    times = {key: [] for key in fns}
    for _ in range(repeat):
        for key, fn in fns.items():
            times[key].append(_timed(fn))
    return {key: float(np.median(t)) for key, t in times.items()}


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _torch_steps(torch, B, T, I, H, x, dy):
    module = torch.nn.LSTM(I, H, batch_first=True)
    tx, tdy = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)

    def train():
        module.zero_grad(set_to_none=True)
        tx.grad = None
        y, _ = module(tx)
        y.backward(tdy)

    def infer():
        with torch.no_grad():
            module(tx)
    return train, infer


def measure(size, *, peepholes=(None, "diagonal", "full"), repeat=7, torch=None) -> dict:
    """Median seconds for each variant; torch=None skips the torch side."""
    B, T, I, H = size
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I), dtype=np.float32)
    dy = rng.standard_normal((B, T, H), dtype=np.float32)
    fns = {}
    for peephole in peepholes:
        lstm = LSTM(I, H, peephole=peephole, seed=0)

        def train(lstm=lstm):
            lstm.forward(x)
            lstm.backward(dy)
        fns[("nplstm", peephole, "train")] = train
        fns[("nplstm", peephole, "infer")] = lambda lstm=lstm: lstm.forward(x)
    if torch is not None:
        fns[("torch", None, "train")], fns[("torch", None, "infer")] = _torch_steps(torch, B, T, I, H, x, dy)
    reps = max(min(repeat, 5), min(repeat, int(repeat * 2e5 / (B * T * H))))  # fewer for the largest sizes
    result = interleaved(fns, reps)
    result["gemm_floor"] = gemm_floor(B, T, I, H, repeat=reps)
    result["gemm_floor_infer"] = gemm_floor(B, T, I, H, repeat=reps, forward_only=True)
    lstm = LSTM(I, H, peephole="diagonal", seed=0)
    lstm.forward(x)
    return {"size": size, "times": result, "repeats": reps,
            "cache": cache_elements(lstm), "cache_formula": cache_formula(B, T, I, H)}


def run(sizes="default", repeat=7, threads=None, print_fn=print) -> list[dict]:
    """Run the benchmark over a named grid or a list of (B, T, I, H); print the table; return rows."""
    try:
        import torch
    except ImportError:
        torch = None
    grid = SIZES[sizes] if isinstance(sizes, str) else sizes
    if torch is not None:
        torch.set_num_threads(threads or _blas_threads() or torch.get_num_threads())
    rate = gemm_rate()
    print_fn(f"machine: {_cpu_name()}, {os.cpu_count()} cores, {_blas_threads() or '?'} BLAS threads; "
             f"NumPy {np.__version__}" + (f", torch {torch.__version__} with {torch.get_num_threads()} threads"
                                        if torch is not None else "; torch not installed: nplstm only"))
    print_fn(f"float32 GEMM rate (NumPy, 2048x2048): {rate:.0f} GFLOP/s")
    print_fn("training step = forward + backward to all parameters and the input; medians in ms")
    head = (f"{'B':>3} {'T':>5} {'I':>4} {'H':>4} | {'nplstm':>8} {'torch':>8} {'ratio':>6} {'GFLOP/s':>7} {'%GEMM':>6}"
            f" {'floor':>7} {'floor/torch':>11}"
            f" | {'infer':>7} {'torch':>7} {'ratio':>6} {'floor/torch':>11} | {'diag':>6} {'full':>6}"
            f" | {'cache MB':>8} {'formula':>7} | {'checks':>6}")
    print_fn(head)
    rows = []
    for size in grid:
        r = measure(size, repeat=repeat, torch=torch)
        t = r["times"]
        B, T, I, H = size
        ours = t[("nplstm", None, "train")]
        gflops = step_flops(B, T, I, H) / ours / 1e9
        row = {"B": B, "T": T, "I": I, "H": H, "train_ms": ours * 1e3,
               "infer_ms": t[("nplstm", None, "infer")] * 1e3, "gflops": gflops, "gemm_fraction": gflops / rate,
               "gemm_floor_ms": t["gemm_floor"] * 1e3, "infer_floor_ms": t["gemm_floor_infer"] * 1e3,
               "diagonal_over_none": t[("nplstm", "diagonal", "train")] / ours,
               "full_over_none": t[("nplstm", "full", "train")] / ours,
               "cache_mb": r["cache"] * 4 / 2 ** 20, "cache_formula_mb": r["cache_formula"] * 4 / 2 ** 20,
               "repeats": r["repeats"]}
        step_s, checks_s = check_cost(size, repeat=r["repeats"])
        row["checks_fraction"] = checks_s / step_s
        if torch is not None:
            row.update(torch_train_ms=t[("torch", None, "train")] * 1e3, torch_infer_ms=t[("torch", None, "infer")] * 1e3)
            row.update(train_ratio=row["train_ms"] / row["torch_train_ms"], infer_ratio=row["infer_ms"] / row["torch_infer_ms"],
                       floor_ratio=row["gemm_floor_ms"] / row["torch_train_ms"],
                       infer_floor_ratio=row["infer_floor_ms"] / row["torch_infer_ms"])
        rows.append(row)
        f = lambda k, w=8, p=2: f"{row[k]:>{w}.{p}f}" if k in row else f"{'-':>{w}}"
        print_fn(f"{B:>3} {T:>5} {I:>4} {H:>4} | {f('train_ms')} {f('torch_train_ms')} {f('train_ratio', 6)} "
                 f"{f('gflops', 7, 1)} {100 * row['gemm_fraction']:>5.0f}% {f('gemm_floor_ms', 7)} {f('floor_ratio', 11)} | {f('infer_ms', 7)} {f('torch_infer_ms', 7)} "
                 f"{f('infer_ratio', 6)} {f('infer_floor_ratio', 11)} | {f('diagonal_over_none', 6)} {f('full_over_none', 6)} | "
                 f"{f('cache_mb', 8, 1)} {f('cache_formula_mb', 7, 1)} | {100 * row['checks_fraction']:>5.1f}%")
    print_fn("ratio = nplstm / torch (below 1: nplstm faster); floor = the step's BLAS calls alone (gemm_floor); "
             "diag, full = training time with peepholes / without; checks = the NaN/Inf scans of a training "
             "step (bench.check_cost) as a share of it")
    return rows


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _blas_threads() -> int | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None
