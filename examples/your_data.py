"""Your own data, Keras-shaped: a real series, labelled sequences of different lengths, and a text.

    python examples/your_data.py            # about a minute on 2 cores

1. Yearly sunspots 1700-2008 (tests/data/sunspots.csv): windows of 20 years -> the next year, the last
   20 % of the years held out, against the persistence forecast (next year = this year).
2. Ragged labelled sequences: is the running sum of the first feature positive at the sequence's end?
3. A text: next-character prediction with an Embedding over character ids, against the unigram entropy.
"""
from pathlib import Path

import numpy as np

import nplstm
from nplstm.data import chronological_split, windows
from nplstm.layers import Embedding

ROOT = Path(__file__).resolve().parents[1]


def series():
    years, spots = np.loadtxt(ROOT / "tests" / "data" / "sunspots.csv", delimiter=",", skiprows=1, unpack=True)
    x, y = windows(spots, window=20)                      # (289, 20, 1) -> (289, 1)
    train, test = chronological_split(len(x), 0.2)        # the last 58 windows are the test years
    model = nplstm.Model(nplstm.LSTM(1, 32, seed=0), nplstm.Linear(32, 1, seed=1), many_to_one=True)
    history = model.fit(x[train], y[train], validation=0.1, epochs=100, lr=3e-3, early_stop=10)
    ours = model.evaluate(x[test], y[test])
    persistence = float(((x[test, -1] - y[test]) ** 2).mean())
    print(f"sunspots: test MSE {ours['mse']:.0f} (MAE {ours['mae']:.1f}, R² {ours['r2']:.2f}) against "
          f"persistence {persistence:.0f}, after {history.steps_done} updates ({history.stopped})")
    print(f"  the next three years after {int(years[-1])}: {np.round(model.forecast(spots[-20:], 3), 1)}")


def sequences():
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(rng.integers(5, 40), 3)) for _ in range(700)]    # 700 sequences, 5..39 steps
    ys = np.array([int(s[:, 0].sum() > 0) for s in xs])                     # class ids: the sign of a sum
    model = nplstm.Model(nplstm.LSTM(3, 32, seed=0), nplstm.Linear(32, 2, seed=1), many_to_one=True)
    model.fit(xs[:500], ys[:500], validation=0.1, epochs=30, lr=1e-2, early_stop=5)
    m = model.evaluate(xs[500:], ys[500:])
    print(f"ragged sequences: test accuracy {m['accuracy']:.3f} on 200 held-out sequences "
          f"(majority class {max(ys[500:].mean(), 1 - ys[500:].mean()):.3f})")


def text():
    import pydoc_data.topics as topics                   # a text that ships with every CPython
    chars = "".join(topics.topics.values())[:200_000]
    vocab = sorted(set(chars))
    ids = np.array([vocab.index(c) for c in chars[:30_000]], np.int64)
    T = 64
    starts = np.arange(0, len(ids) - T - 1, T)
    x = np.stack([ids[s:s + T] for s in starts])          # (B, T) character ids
    y = np.stack([ids[s + 1:s + T + 1] for s in starts])  # (B, T) the next character at every step
    model = nplstm.Model(nplstm.LSTM(32, 64, seed=0), nplstm.Linear(64, len(vocab), seed=1),
                         embedding=Embedding(len(vocab), 32, seed=2), dropout=0.1)
    model.fit(x, y, validation=0.1, epochs=10, batch_size=32, lr=1e-2)
    m = model.evaluate(x[-len(x) // 10:], y[-len(y) // 10:])
    p = np.bincount(ids, minlength=len(vocab)) / len(ids)
    unigram = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    print(f"text: validation cross-entropy {m['loss']:.2f} nats/char (accuracy {m['accuracy']:.2f}) against "
          f"the unigram entropy {unigram:.2f}")


if __name__ == "__main__":
    series()
    sequences()
    text()
