"""Train in nplstm, continue in PyTorch, come back: the same LSTM in both, to float32 rounding.

What it teaches: nplstm's LSTM with peephole=None is exactly torch.nn.LSTM. `to_torch` builds the
torch module from nplstm's W (I, 4H), R (H, 4H), b (4H,) (PyTorch stores their transposes, with two
biases that always appear summed); `from_torch` folds them back. The Linear head moves by hand:
torch.nn.Linear's weight is W.T. The outputs of the two libraries are compared number by number
after each move. Adam's moments do not travel: PyTorch's optimizer starts afresh.

The task: the adding problem (nplstm.tasks, form="modern", T = 20): the sum of the two marked
values of a sequence; predicting the mean gives MSE 1/6 ≈ 0.167.

Run:  python examples/to_pytorch.py     (needs PyTorch: pip install -e ".[torch]"; about 4 s on a 2-core machine)
"""
import sys

import numpy as np

import nplstm
from nplstm.tasks import make_task


def main():
    try:
        import torch
    except ImportError:
        sys.exit('examples/to_pytorch.py needs PyTorch, which is not installed: pip install -e ".[torch]"')
    from nplstm.interop.torch import from_torch, to_torch

    torch.manual_seed(0)
    task = make_task("adding", T=20, form="modern")
    rng = np.random.default_rng(0)
    test = task.test_set()                                 # x (2560, 20, 2), y (2560, 1)
    x_test = test.x[:256].copy()                          # the test set is read-only; torch wants writable arrays

    # 1. nplstm: an LSTM without peepholes (the variant torch.nn.LSTM has), a Linear head, Adam
    model = nplstm.Model(nplstm.LSTM(2, 32, peephole=None, seed=0), nplstm.Linear(32, 1, seed=1),
                         many_to_one=True)
    opt = nplstm.Adam(1e-2)
    print("adding problem, T = 20: predicting the mean gives MSE 0.167")
    for step in range(1, 301):
        batch = task.batch(rng, 32)
        loss, dpred = nplstm.mse(model.forward(batch.x), batch.y)
        model.backward(dpred)
        nplstm.clip_grad_norm(model.grads, 1.0)
        opt.step(model.params, model.grads)
        if step % 100 == 0:
            print(f"nplstm   step {step:3d}  train MSE {loss:.4f}")

    # 2. to PyTorch: the LSTM by to_torch, the head by hand (torch.nn.Linear's weight is (out, in) = W.T)
    lstm_t = to_torch(model.lstm)                          # torch.nn.LSTM(2, 32, batch_first=True), float32
    head_t = torch.nn.Linear(32, 1)
    with torch.no_grad():
        head_t.weight.copy_(torch.from_numpy(model.head.params["W"].T))
        head_t.bias.copy_(torch.from_numpy(model.head.params["b"]))

    def torch_forward(x):
        out, (h_n, c_n) = lstm_t(x)                        # out (B, T, H); h_n (1, B, H)
        return head_t(h_n[-1])                             # many-to-one: the head on the final h

    with torch.no_grad():
        diff = np.abs(model.forward(x_test) - torch_forward(torch.from_numpy(x_test)).numpy()).max()
    print(f"nplstm -> torch: max |nplstm - torch| output difference {diff:.1e} (float32, 256 test sequences)")

    # 3. keep training in PyTorch: autograd, torch's Adam and clipping
    opt_t = torch.optim.Adam([*lstm_t.parameters(), *head_t.parameters()], lr=1e-2)
    for step in range(301, 501):
        batch = task.batch(rng, 32)
        loss_t = torch.nn.functional.mse_loss(torch_forward(torch.from_numpy(batch.x)), torch.from_numpy(batch.y))
        opt_t.zero_grad()
        loss_t.backward()
        torch.nn.utils.clip_grad_norm_([*lstm_t.parameters(), *head_t.parameters()], 1.0)
        opt_t.step()
        if step % 100 == 0:
            print(f"pytorch  step {step:3d}  train MSE {loss_t.item():.4f}")

    # 4. back to nplstm: from_torch folds bias_ih + bias_hh into b; the head by hand again
    back = nplstm.Model(from_torch(lstm_t), nplstm.Linear(32, 1), many_to_one=True)
    back.head.params["W"] = head_t.weight.detach().numpy().T.copy()     # (H, 1)
    back.head.params["b"] = head_t.bias.detach().numpy().copy()         # (1,)
    with torch.no_grad():
        diff = np.abs(back.forward(x_test) - torch_forward(torch.from_numpy(x_test)).numpy()).max()
    print(f"torch -> nplstm: max |nplstm - torch| output difference {diff:.1e} (float32, 256 test sequences)")

    metrics = task.evaluate(back.forward(test.x), test)
    print(f"back in nplstm: test MSE {metrics['mse']:.4f} on {len(test.y)} sequences (baseline 0.167), "
          f"{100 * (1 - metrics['frac_wrong']):.1f}% within the task's tolerance")


if __name__ == "__main__":
    main()
