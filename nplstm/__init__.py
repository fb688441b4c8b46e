"""nplstm: a NumPy-only LSTM whose backpropagation through time is checked, not trusted.

The library (this level, NumPy only): ops (stable σ, softmax) -> lstm (one layer, one direction,
the fast engine) -> stack (layers, directions, ragged batches) -> layers (LSTM, Linear, Model
shells); gru (PyTorch's GRU: core and shell); reference (the same cell written plainly, one step at a time: read this one); losses,
optim, gradcheck; data and predict (your own data: windows, padding, standardisation; predict,
evaluate, forecast); grad (no_grad: inference mode); anomaly (detect_anomaly: the first NaN or Inf, explained); rnn (a plain tanh
RNN, the baseline); checking and layouts (check your own LSTM: check_gradients, compare_trace, and weights
converted between nplstm, PyTorch, Keras, ONNX and hand-written layouts).

The application, in sub-packages that `import nplstm` does not load: tasks (the papers'
benchmarks), training (trainer, checkpoints, run directories, recipes, the paper suite),
diagnostics (the anomaly autopsy, gradient flow, plots, report, benchmark), interop (torch, onnx, keras),
science (`nplstm odyssey`: Greff's LSTM variants, the GRU and a plain RNN against the vanilla LSTM, with
Welch's t-test), and cli (the `nplstm` command).
"""
from .anomaly import AnomalyError, NonFiniteError, detect_anomaly
from . import layouts  # noqa: F401  (nplstm.layouts: other conventions' weights, converted)
from .checking import check_gradients, compare_trace
from .grad import is_grad_enabled, no_grad
from .gradcheck import GradcheckReport, gradcheck
from .gru import GRU, gru_backward, gru_forward, gru_stack_backward, gru_stack_forward
from .layers import LSTM, Embedding, Linear, Model, linear_backward, linear_forward
from .losses import mse, softmax_cross_entropy
from .lstm import lstm_backward, lstm_forward
from .ops import log_softmax, sigmoid, softmax
from .optim import SGD, Adam, AdamW, RMSprop, clip_grad_norm
from . import reference  # noqa: F401  (nplstm.reference: the plain cell, for reading)
from .rnn import RNN
from .stack import LSTMConfig, init_params, stack_backward, stack_forward

__version__ = "0.1.0"

__all__ = [
    "LSTM", "RNN", "Linear", "Model", "LSTMConfig", "gradcheck", "GradcheckReport",
    "mse", "softmax_cross_entropy", "SGD", "Adam", "AdamW", "RMSprop", "clip_grad_norm", "Embedding",
    "sigmoid", "softmax", "log_softmax", "lstm_forward", "lstm_backward",
    "stack_forward", "stack_backward", "init_params", "linear_forward", "linear_backward",
    "detect_anomaly", "AnomalyError", "NonFiniteError", "no_grad", "is_grad_enabled",
    "GRU", "gru_forward", "gru_backward", "gru_stack_forward", "gru_stack_backward",
    "check_gradients", "compare_trace", "layouts",
]
