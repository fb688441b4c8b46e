"""What nplstm.detect_anomaly() costs: one training step with detection off and on, interleaved.

Run:  python benchmarks/anomaly_overhead.py [--repeat 60]
A step is forward, mean squared error, backward, clip_grad_norm and an Adam update of an
LSTM(16, 64) + Linear(64, 1) on a batch of 32 sequences of 100 steps, float32.
"""
import argparse
import time

import numpy as np

import nplstm


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=60)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    model = nplstm.Model(nplstm.LSTM(16, 64, seed=0), nplstm.Linear(64, 1, seed=1), many_to_one=True)
    opt = nplstm.Adam(1e-3)
    x = rng.standard_normal((32, 100, 16), dtype=np.float32)
    y = rng.standard_normal((32, 1), dtype=np.float32)

    def step():
        loss, dout = nplstm.mse(model.forward(x), y)
        model.backward(dout)
        nplstm.clip_grad_norm(model.grads, 1.0)
        opt.step(model.params, model.grads)

    def timed(on: bool) -> float:
        with nplstm.detect_anomaly(on):
            t = time.perf_counter()
            step()
            return time.perf_counter() - t

    timed(False), timed(True)                # warm-up
    times = {False: [], True: []}
    for _ in range(args.repeat):             # interleaved: drifts in machine speed hit both alike
        for on in (False, True):
            times[on].append(timed(on))
    off, on = (np.array(times[k]) * 1e3 for k in (False, True))
    print(f"training step, B=32 T=100 I=16 H=64, {args.repeat} repetitions each")
    print(f"detection off: median {np.median(off):.2f} ms, min {off.min():.2f} ms")
    print(f"detection on:  median {np.median(on):.2f} ms, min {on.min():.2f} ms")
    print(f"overhead: {100 * (np.median(on) / np.median(off) - 1):+.1f} % (median), "
          f"{100 * (on.min() / off.min() - 1):+.1f} % (min)")


if __name__ == "__main__":
    main()
