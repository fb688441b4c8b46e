"""Training step of nplstm against torch.nn.LSTM, side by side (the same code as `nplstm bench`).

Run:  python benchmarks/lstm_step.py [--tiny] [--repeat N] [--json PATH]
The table and how to read it: docs/performance.md.
"""
import sys

from nplstm.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
