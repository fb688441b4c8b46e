"""The LSTM family's benchmark: each of Greff's variants against the vanilla LSTM (`nplstm bench
--variants`), and nplstm.GRU against torch.nn.GRU (`nplstm bench --gru`), interleaved in one process."""
from __future__ import annotations

import numpy as np

from ..layers import LSTM
from .timing import Ratio, interleaved, interleaved_samples


def variant_times(size, repeat: int = 15) -> dict[str, float]:
    """Median seconds of one training step (forward + backward, float32) for each of Greff's variants
    (nplstm.variants.VARIANTS), timed interleaved in this process after a warm-up."""
    from ..variants import VARIANTS
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


def run_variants(sizes, repeat: int = 15, print_fn=print) -> list[dict]:
    """Each variant's training step against the vanilla LSTM's, per size: the rows of `nplstm bench --variants`."""
    from ..variants import VARIANTS
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


def run_gru(sizes, repeat: int = 15, threads=None, print_fn=print) -> list[dict]:
    """One GRU training step (forward + backward to every parameter and x, float32) of nplstm.GRU
    against torch.nn.GRU, interleaved in this process, medians: the rows of `nplstm bench --gru`."""
    import torch

    from ..gru import GRU
    if threads:
        torch.set_num_threads(threads)
    print_fn(f"GRU training step, float32, medians of {repeat}; torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads")
    print_fn(f"{'B':>3} {'T':>5} {'I':>4} {'H':>4} | {'nplstm ms':>9} {'torch ms':>9} {'ratio':>6} {'spread':>7}")
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
        s = interleaved_samples({"nplstm": ours, "torch": theirs}, repeat)
        ratio = Ratio.of(s["nplstm"], s["torch"])
        rows.append({"B": B, "T": T, "I": I, "H": H, "gru_ms": s["nplstm"].median * 1e3,
                     "torch_gru_ms": s["torch"].median * 1e3, "gru_ratio": ratio.value, "gru_ratio_spread": ratio.spread,
                     "gru": s["nplstm"].ms(), "torch_gru": s["torch"].ms()})
        print_fn(f"{B:>3} {T:>5} {I:>4} {H:>4} | {rows[-1]['gru_ms']:>9.2f} {rows[-1]['torch_gru_ms']:>9.2f} "
                 f"{ratio.value:>6.2f} {100 * ratio.spread:>6.0f}%" + ("" if ratio.trusted else "  (spread > 20 %)"))
    return rows
