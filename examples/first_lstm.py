"""Your own first LSTM in 30 lines: parameters built by hand, the library's functional core, Adam.

What it teaches: what an LSTM *is* once the classes are peeled away. A handful of arrays with the
shapes of docs/math.md (W (I, 4H), R (H, 4H), b (4H,), diagonal peepholes (H,), gate order i, f, g, o
along 4H), one call forward through time, one call backward through time, and an update rule that
is plain per-array math. No nplstm.LSTM, no Model, no optimizer object.

The task: echo the input three steps late, y_t = x_{t-3}. Each step's input is a random number in
[-1, 1], so the network must hold three of them in its cell state at once. Predicting 0 gives MSE 1/3.

Run:  python examples/first_lstm.py      (deterministic; about 2 s on a 2-core machine)
"""
import numpy as np

import nplstm
from nplstm.optim import adam_rule   # the pure Adam rule: (p, g, m, v, t) -> (p, m, v)

T, B, I, H, DELAY, STEPS = 20, 32, 1, 24, 3, 600
rng = np.random.default_rng(0)


def echo_batch(rng, B):
    """x (T, B, 1) time-major; y (T, B, 1) with y_t = x_{t-DELAY}; mask (T, B): steps that have a target."""
    x = rng.uniform(-1, 1, (T, B, I))
    y = np.zeros_like(x)
    y[DELAY:] = x[:-DELAY]
    return x, y, np.broadcast_to(np.arange(T)[:, None] >= DELAY, (T, B))


# --- the parameters, with the shapes of docs/math.md ------------------------------------------------
k = 1 / np.sqrt(H)                                   # PyTorch's scale for LSTM weights
params = {
    "W": rng.uniform(-k, k, (I, 4 * H)),              # input weights, blocks i, f, g, o
    "R": rng.uniform(-k, k, (H, 4 * H)),              # recurrent weights
    "b": np.r_[np.zeros(H), np.ones(H), np.zeros(2 * H)],  # (4H,): forget-gate bias 1, remember by default
    "p_i": rng.uniform(-k, k, H), "p_f": rng.uniform(-k, k, H), "p_o": rng.uniform(-k, k, H),  # peepholes (H,)
    "W_y": rng.uniform(-k, k, (H, 1)), "b_y": np.zeros(1),  # the linear read-out y_t = h_t W_y + b_y
}
adam = {key: (np.zeros_like(p), np.zeros_like(p)) for key, p in params.items()}   # Adam's m, v per array


def forward(P, x):
    """x (T, B, I) -> prediction (T, B, 1), and the caches the backward pass needs."""
    zeros = np.zeros((x.shape[1], H))                # h_0 = c_0 = 0
    peep = (P["p_i"], P["p_f"], P["p_o"])
    # a_t = x_t W + h_{t-1} R + b; i, f = σ(a + c_{t-1} p); g = tanh(a_g); c_t = f c_{t-1} + i g;
    # o = σ(a_o + c_t p_o); h_t = o tanh(c_t). Every sequence is T long, so batch_sizes is [B] * T.
    h, c, cache = nplstm.lstm_forward(x, zeros, zeros, P["W"], P["R"], P["b"], peep, batch_sizes=[x.shape[1]] * T)
    pred, head_cache = nplstm.linear_forward(h[1:], P["W_y"], P["b_y"])     # h[1:]: (T, B, H) -> (T, B, 1)
    return pred, (cache, head_cache, zeros, peep)


print(f"echo x_(t-{DELAY}): predicting 0 gives MSE {1 / 3:.3f}")
for step in range(1, STEPS + 1):
    x, y, mask = echo_batch(rng, B)
    pred, (cache, head_cache, zeros, peep) = forward(params, x)
    loss, dpred = nplstm.mse(pred, y, mask)                                  # mean over the steps with a target
    # backward: through the read-out, then through time (docs/math.md, steps 1-6)
    dh, head_grads = nplstm.linear_backward(dpred, head_cache, params["W_y"])   # dL/dh_t: (T, B, H)
    # zeros for dh_n, dc_n: the loss does not read the final state directly
    dx, dh0, dc0, grads = nplstm.lstm_backward(dh, zeros, zeros, cache, params["W"], params["R"], peep)
    grads.update(W_y=head_grads["W"], b_y=head_grads["b"])                   # now every key of params
    # the weights are shared by every step, so each takes one step along its gradient summed over time
    for key in params:
        params[key], *adam[key] = adam_rule(params[key], grads[key], *adam[key], step, lr=1e-2)
    if step in (1, 10, 50) or step % 100 == 0:
        print(f"step {step:4d}  train MSE {loss:.4f}")

x, y, mask = echo_batch(np.random.default_rng(1), 256)                      # sequences never trained on
pred, _ = forward(params, x)
test_mse, _ = nplstm.mse(pred, y, mask)
print(f"test MSE {test_mse:.4f} on 256 fresh sequences (predicting 0 gives {1 / 3:.3f})")
print("sequence 0, t = 10..15:")
print("  x_(t-3)   ", " ".join(f"{v:+.2f}" for v in y[10:16, 0, 0]))
print("  prediction", " ".join(f"{v:+.2f}" for v in pred[10:16, 0, 0]))
