"""A real series end to end: yearly sunspots (tests/data/sunspots.csv, public domain, see its README).

The LSTM must beat the persistence forecast on the chronological test split (the last 20 % of the
years), through the command line; and a PyTorch twin (the same initial weights through interop, the
same batches, torch.optim.Adam with clip_grad_norm_) must reach the same test loss within 10 %: the
trainer's Adam and clipping agree with PyTorch's on real data, not only on a test's random arrays.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nplstm.interop.torch import to_torch
from nplstm.tasks import make_task
from nplstm.training.trainer import TrainConfig, build_model, train

DATA = Path(__file__).parent / "data" / "sunspots.csv"
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_cli_beats_persistence_on_the_sunspots(tmp_path):
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, "-m", "nplstm", "train", "series", "--path", str(DATA), "--window", "20",
                          "--season", "11", "--run-dir", str(run), "--no-progress", "--quiet"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("series: beats "), out.stdout
    numbers = {line.split(":")[0].strip(): float(line.split("MSE ")[1].split(",")[0])
               for line in lines[1:4] if "MSE " in line}
    test = next(v for k, v in numbers.items() if k.startswith("test"))
    assert test < numbers["persistence"] and test < numbers["seasonal-naive"], out.stdout
    pred = subprocess.run([sys.executable, "-m", "nplstm", "predict", str(run), "--path", str(DATA),
                           "--steps-ahead", "3"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert pred.returncode == 0, pred.stderr
    assert pred.stdout.splitlines()[0] == "step,SUNACTIVITY_forecast"
    assert [r.split(",")[0] for r in pred.stdout.splitlines()[1:]] == ["2009", "2010", "2011"]


@pytest.mark.slow
def test_a_torch_twin_reaches_the_same_test_loss(torch):
    task = make_task("series", path=str(DATA), window=20)
    model = build_model(task, 32, peephole=None, seed=0)     # torch.nn.LSTM has no peepholes
    lstm, head = to_torch(model.lstm), torch.nn.Linear(32, 1)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(model.head.params["W"].T.copy()))
        head.bias.copy_(torch.from_numpy(model.head.params["b"].copy()))
    steps, batch, lr = 600, 32, 3e-3
    cfg = TrainConfig(steps=steps, batch_size=batch, lr=lr, clip=1.0, eval_every=steps, early_stop=False,
                      progress=False, log_every=0, seed=0)
    rng = np.random.default_rng(cfg.seed)                     # the trainer's data order, drawn the same way
    batches = [task.batch(rng, batch) for _ in range(steps)]
    train(model, task, cfg)

    # torch's two LSTM biases always act summed; nplstm has one (b = bias_ih + bias_hh). Training both
    # would move the sum twice as fast under Adam and count it twice in the clipping norm: bias_hh stays 0.
    lstm.bias_hh_l0.requires_grad_(False)
    params = [p for p in list(lstm.parameters()) + list(head.parameters()) if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    for b in batches:
        _, (h_n, _) = lstm(torch.from_numpy(b.x))
        loss = torch.nn.functional.mse_loss(head(h_n[-1]), torch.from_numpy(b.y))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    test = task.test                                          # the held-out years, in the data's own units
    ours = model.evaluate(test.x, test.y)["mse"]
    with torch.no_grad():
        x = torch.from_numpy(model.scaler.x(test.x).astype(np.float32))
        theirs_scaled = head(lstm(x)[1][0][-1]).double().numpy()
    theirs = float(((model.scaler.y_inverse(theirs_scaled) - test.y) ** 2).mean())
    persistence = task.baselines()["persistence"]["mse"]
    assert ours < persistence and theirs < persistence, (ours, theirs, persistence)
    assert abs(ours - theirs) / theirs < 0.10, (ours, theirs)
