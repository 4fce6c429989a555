"""Cells: nn.RNNCell/LSTMCell/GRUCell <-> SimpleRNNCell/LSTMCell/GRUCell."""

import itertools

import numpy as np
import pytest
import torch

import parity
from factories import skip_unless_float64_exact, KERAS_CELLS, KINDS, NUM_STATES, TORCH_CELLS, keras_kwargs, randomize_keras

INPUT, HIDDEN, BATCH, TIME = 3, 4, 2, 6

CASES = list(itertools.product(
    KINDS, (True, False), ("float32", "float64"), ("torch2keras", "keras2torch"),
    (False, True), ("one-step", "loop"),
))


def case_id(case):
    kind, bias, dtype, direction, with_state, steps = case
    return "-".join([kind, "bias" if bias else "nobias", dtype.replace("float", "f"),
                     "t2k" if direction == "torch2keras" else "k2t",
                     "h0" if with_state else "noh0", steps])


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_cell_parity(case, rng):
    kind_id, bias, dtype, direction, with_state, steps = case
    kind, activation = KINDS[kind_id]
    skip_unless_float64_exact(dtype)
    if direction == "torch2keras":
        kwargs = {"nonlinearity": activation} if kind == "rnn" else {}
        cell = TORCH_CELLS[kind](INPUT, HIDDEN, bias=bias, **kwargs).to(getattr(torch, dtype))
        keras_cell = parity.to_keras(cell)
        assert isinstance(keras_cell, KERAS_CELLS[kind])
    else:
        keras_cell = KERAS_CELLS[kind](HIDDEN, use_bias=bias, dtype=dtype,
                                       **keras_kwargs(kind, activation))
        keras_cell.build((None, INPUT))
        randomize_keras(keras_cell, rng)
        cell = parity.to_torch(keras_cell)
        assert isinstance(cell, TORCH_CELLS[kind])
    x = rng.normal(size=(BATCH, INPUT) if steps == "one-step" else (TIME, BATCH, INPUT))
    state = None
    if with_state:
        states = tuple(rng.normal(size=(BATCH, HIDDEN)) for _ in range(NUM_STATES[kind]))
        state = states if kind == "lstm" else states[0]
    report = parity.assert_parity(cell, keras_cell, x, initial_state=state,
                                  **parity.default_tolerance(dtype))
    names = ["h", "c"] if kind == "lstm" else ["h"]
    if steps == "loop":
        names = ["outputs"] + names
    assert list(report.outputs) == names
