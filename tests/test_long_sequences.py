"""Exactness over long sequences: errors must not grow past the tolerance."""

import numpy as np
import pytest
import torch

import parity


MODULES = pytest.mark.parametrize("module_type", [torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU],
                                  ids=["rnn", "lstm", "gru"])


@MODULES
def test_seq_len_1000_float32(module_type, rng):
    _check_long(module_type(16, 32), "float32", rng)


@pytest.mark.slow
@MODULES
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_seq_len_1000_stacked_bidirectional(module_type, dtype, rng):
    _check_long(module_type(16, 32, num_layers=2, bidirectional=True), dtype, rng)


def _check_long(module, dtype, rng):
    module = module.to(getattr(torch, dtype))
    keras_model = parity.to_keras(module)
    x = rng.normal(size=(1000, 2, 16))
    report = parity.assert_parity(module, keras_model, x, **parity.default_tolerance(dtype))
    # Headroom check: the measured error is far below the tolerance (~1e-7 in float32).
    assert report.max_abs_error < {"float32": 1e-6, "float64": 1e-13}[dtype], str(report)


def test_readme_quick_start_runs():
    """The README's quick start is code a user will paste: it must run as written."""
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    block = re.search(r"## Quick start\n\n```python\n(.*?)```", readme, re.S).group(1)
    exec(compile(block, "README.md", "exec"), {})
