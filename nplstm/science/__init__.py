"""Science: experiments that ask a question of the library and answer it with a test, not a single run.

odyssey (`nplstm odyssey`: every LSTM variant of Greff et al. 2017, "LSTM: A Search Space Odyssey", with
the GRU and a plain RNN beside them, on a suite of tasks, each with its own learning-rate search, judged
against the vanilla LSTM by Welch's t-test) -> stats (Welch's test, the Student t distribution and the
regularized incomplete beta function it needs, in plain Python) and report (tables, verdicts, the figure);
baselines (the plain RNN dressed as a training Model's recurrent layer); lag1997 (the noise-free long-lag
task of Hochreiter & Schmidhuber 1997 in the paper's own one-cell network and learning rule).
"""
