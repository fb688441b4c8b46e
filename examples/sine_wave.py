"""Predict the next value of a noisy sine wave with nplstm.Model (many-to-many).

What it teaches: the object API on a sequence-to-sequence job. nplstm.Model is an LSTM with a
Linear head at every step: out (B, T, 1) for x (B, T, 1). One forward, one loss, one backward
(which fills model.grads), clipping, one optimizer step. Train and test windows come from
different stretches of the series, so the test MSE measures what was learnt, not remembered.

The series is s_t = sin(2π t / 20) + noise (std 0.1); the input is s_1..s_T, the target s_2..s_{T+1}.
No model can predict the next step's noise, so the test MSE cannot go below 0.1² = 0.0100; against
the clean wave the LSTM's error goes lower still: it has learnt to see through the noise.
"No change" (predict s_{t+1} = s_t) is the baseline to beat.

Run:  python examples/sine_wave.py                       (deterministic; about 2 s on a 2-core machine)
      python examples/sine_wave.py --plot sine_wave.png  (also draws the test predictions; needs matplotlib)
"""
import argparse

import numpy as np

import nplstm

PERIOD, NOISE, T, WARMUP = 20, 0.1, 50, 5    # WARMUP: steps at the start of a window that do not count


def make_series(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """The noisy series and the clean wave under it, each (n,) float32."""
    clean = np.sin(2 * np.pi * np.arange(n) / PERIOD)
    return (clean + NOISE * rng.standard_normal(n)).astype(np.float32), clean.astype(np.float32)


def windows(series: np.ndarray, starts: np.ndarray):
    """x (B, T, 1) = series[s : s+T], y (B, T, 1) = series[s+1 : s+T+1] for each start s."""
    idx = starts[:, None] + np.arange(T + 1)                 # (B, T+1)
    w = series[idx][..., None]
    return w[:, :-1], w[:, 1:]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400, help="training updates (default 400)")
    ap.add_argument("--plot", metavar="PNG", help="save a plot of test predictions here (needs matplotlib)")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    noisy, clean = make_series(4000, rng)
    split = 3000                                             # train on s_0..s_2999, test on the rest
    test_starts = np.arange(split, len(noisy) - T - 1, T)    # non-overlapping held-out windows
    x_test, y_test = windows(noisy, test_starts)
    _, y_clean = windows(clean, test_starts)
    mask = np.broadcast_to(np.arange(T) >= WARMUP, (len(test_starts), T))   # (B, T): steps that count
    train_mask = np.broadcast_to(np.arange(T) >= WARMUP, (32, T))

    model = nplstm.Model(nplstm.LSTM(1, 32, seed=0), nplstm.Linear(32, 1, seed=1))   # many-to-many
    opt = nplstm.Adam(1e-2)
    no_change, _ = nplstm.mse(x_test, y_test, mask)
    print(f"noisy sine, period {PERIOD}, noise std {NOISE}: the floor is {NOISE ** 2:.4f}; "
          f"'no change' gives test MSE {no_change:.4f}")
    for step in range(1, args.steps + 1):
        x, y = windows(noisy, rng.integers(0, split - T - 1, 32))
        loss, dout = nplstm.mse(model.forward(x), y, train_mask)   # out: (B, T, 1)
        model.backward(dout)                                       # fills model.grads
        nplstm.clip_grad_norm(model.grads, 1.0)
        opt.step(model.params, model.grads)                        # updates the arrays in place
        if step in (1, 25) or step % 50 == 0:
            test, _ = nplstm.mse(model.forward(x_test), y_test, mask)
            print(f"step {step:4d}  train MSE {loss:.4f}  test MSE {test:.4f}")

    pred = model.forward(x_test)
    test, _ = nplstm.mse(pred, y_test, mask)
    vs_clean, _ = nplstm.mse(pred, y_clean, mask)
    print(f"final test MSE {test:.4f} (floor {NOISE ** 2:.4f}, 'no change' {no_change:.4f}); "
          f"against the clean wave {vs_clean:.4f}")
    print("test window 0, steps 20..27:")
    print("  noisy next  ", " ".join(f"{v:+.2f}" for v in y_test[0, 20:28, 0]))
    print("  clean next  ", " ".join(f"{v:+.2f}" for v in y_clean[0, 20:28, 0]))
    print("  predicted   ", " ".join(f"{v:+.2f}" for v in pred[0, 20:28, 0]))
    if args.plot:
        save_plot(args.plot, y_test[0, :, 0], y_clean[0, :, 0], pred[0, :, 0])


def save_plot(path, noisy, clean, pred):
    """Draw one test window; without matplotlib, say so and go on."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(noisy, ".", color="0.6", label="noisy target")
    ax.plot(clean, color="0.3", lw=1, label="clean wave")
    ax.plot(pred, color="C1", label="LSTM prediction")
    ax.axvspan(0, WARMUP - 0.5, color="0.9", label="warm-up (not scored)")
    ax.set_xlabel("step in the test window")
    ax.set_title("one held-out window: next-step prediction", fontsize=10)
    fig.tight_layout()
    fig.legend(loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.subplots_adjust(bottom=0.28)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"plot saved to {path}")


if __name__ == "__main__":
    main()
