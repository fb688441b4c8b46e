"""Shared fixtures. In CI (CI=true) a skipped test fails the run: the torch oracle must run there."""
import os

import numpy as np
import pytest


@pytest.fixture
def torch():
    """PyTorch, imported lazily; skipped locally when missing, a failure in CI."""
    if os.environ.get("CI"):
        import torch
    else:
        torch = pytest.importorskip("torch")
    return torch


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") and skipped and exitstatus == 0:
        reporter.write_line(f"CI: {skipped} test(s) skipped; every test must run in CI", red=True)
        session.exitstatus = 1


def rel_err(a, b) -> float:
    """max |a - b| / max |b|: the normwise relative error of a against the reference b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = np.abs(b).max()
    return float(np.abs(a - b).max() / scale) if scale else float(np.abs(a).max())
