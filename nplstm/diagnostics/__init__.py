"""Looking inside: the anomaly autopsy, gradient flow in time, pictures, the HTML report, the benchmark.

autopsy (where a NaN or Inf was born; imported by nplstm.anomaly only when a check fires);
gradflow (‖∂L/∂h_t‖, ‖∂L/∂c_t‖ back in time, LSTM beside a plain RNN); plots (matplotlib figures
of a run); report (report.html, plot_run); bench (`nplstm bench`, nplstm against torch.nn.LSTM).
Nothing here is imported by `import nplstm`.
"""
