"""nplstm's torch modules on a GPU: parity with nplstm (float64 and float32) and forward+backward time.

Run:  python benchmarks/torch_cuda_check.py [--batch B] [--steps T] [--hidden H] [--repeat N] [--device cpu]
Without CUDA it says so and exits 0 (CI has no GPU; tests/test_torch_modules.py checks the CPU);
--device cpu runs the same checks on the CPU, to try the script itself.
Three modules: VariantLSTM with full peepholes, VariantLSTM as vanilla (diagonal peepholes), and
torch.nn.LSTM (cuDNN) for peephole=None; each starts from an nplstm.LSTM by to_torch, is moved by .to("cuda"),
and is compared with nplstm's own forward and backward on the CPU.
"""
import argparse
import sys
import time

import numpy as np

import nplstm
from nplstm.interop import torch as interop


def rel_err(a, b) -> float:
    """max |a - b| / max |b|."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def parity(torch, lstm, x, lengths, device) -> float:
    """Worst rel_err over y, h_n, c_n, dx and every parameter gradient: the module on `device` vs nplstm."""
    rng = np.random.default_rng(0)
    y, (h, c) = lstm.forward(x, lengths=lengths)
    dy = rng.standard_normal(y.shape).astype(lstm.dtype)
    dx, _ = lstm.backward(dy)
    module = interop.to_torch(lstm).to(device)
    tx = torch.tensor(x, device=device, requires_grad=True)
    tl = torch.tensor(lengths)
    if isinstance(module, torch.nn.LSTM):      # cuDNN reads packed batches; lengths stay on the CPU
        packed = torch.nn.utils.rnn.pack_padded_sequence(tx, tl, batch_first=True, enforce_sorted=False)
        out, (th, tc) = module(packed)
        ty, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        grads = interop.grads_state_dict(lstm)
    else:
        ty, (th, tc) = module(tx, lengths=tl.to(device))
        from nplstm.interop.torch_modules import torch_name
        grads = {torch_name(k): v for k, v in lstm.grads.items()}
    (ty * torch.tensor(dy, device=device)).sum().backward()
    pairs = [(ty, y), (th, h), (tc, c), (tx.grad, dx)]
    pairs += [(p.grad, grads[name]) for name, p in module.named_parameters() if name in grads]
    return max(rel_err(a.detach().cpu().numpy(), b) for a, b in pairs)


def timed(torch, module, x, lengths, repeat) -> float:
    """Median seconds of one forward + backward (synchronised on a GPU)."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times = []
    for _ in range(repeat + 1):              # the first call warms up (kernel selection, allocator)
        sync()
        start = time.perf_counter()
        if isinstance(module, torch.nn.LSTM):
            y = module(x)[0]
        else:
            y = module(x, lengths=lengths)[0]
        y.sum().backward()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--device", default="cuda", help="cuda (default), or cpu to try the script")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("torch is not installed: nothing to check (pip install torch)")
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available: no GPU check here (tests/test_torch_modules.py covers the CPU)")
        return 0
    device = torch.device(args.device)
    label = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    print(f"device: {label}, torch {torch.__version__}")
    cells = {"full peepholes (VariantLSTM)": dict(peephole="full"), "vanilla (VariantLSTM)": dict(),
             "peephole=None (torch.nn.LSTM)": dict(peephole=None)}
    rng = np.random.default_rng(1)
    failed = False
    for name, flags in cells.items():
        for dtype, tol in ((np.float64, 1e-10), (np.float32, 1e-4)):
            lstm = nplstm.LSTM(5, 16, num_layers=2, bidirectional=True, dtype=dtype, seed=2, **flags)
            x = rng.standard_normal((6, 9, 5)).astype(dtype)
            err = parity(torch, lstm, x, np.array([9, 3, 7, 1, 9, 5]), device)
            failed |= not err < tol
            print(f"{name:32s} {np.dtype(dtype).name}: max rel err {err:.1e} (tolerance {tol:.0e})")
        lstm = nplstm.LSTM(args.hidden, args.hidden, seed=3, **flags)
        module = interop.to_torch(lstm).to(device)
        x = torch.randn(args.batch, args.steps, args.hidden, device=device)
        lengths = torch.full((args.batch,), args.steps, device=device)
        seconds = timed(torch, module, x, lengths, args.repeat)
        print(f"{name:32s} forward+backward B={args.batch} T={args.steps} H={args.hidden} float32: "
              f"{1e3 * seconds:.2f} ms")
    print("parity: " + ("FAILED" if failed else "ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
