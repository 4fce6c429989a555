"""The converter matrix: every recurrent layer configuration, both directions.

cell type x bias x layers x bidirectional x batch_first x dtype x direction x
initial state. Each case builds the source with random weights, converts it,
and checks outputs and every final state through the one tolerance helper
(`parity.assert_parity` -> `parity.tolerance`).
"""

import itertools

import keras
import numpy as np
import pytest
import torch

import parity
from factories import KINDS, skip_unless_float64_exact, initial_state, keras_stack, torch_layer

INPUT, HIDDEN, BATCH, TIME = 3, 4, 2, 5

CASES = list(itertools.product(
    KINDS,                      # cell type
    (True, False),              # bias
    (1, 2, 3),                  # layers
    (False, True),              # bidirectional
    (False, True),              # batch_first
    ("float32", "float64"),     # dtype
    ("torch2keras", "keras2torch"),
    (False, True),              # with initial state
))


def case_id(case):
    kind, bias, layers, bi, batch_first, dtype, direction, h0 = case
    return "-".join([
        kind, f"{layers}layer", "bi" if bi else "uni", "bias" if bias else "nobias",
        "bf" if batch_first else "tm", dtype.replace("float", "f"),
        "t2k" if direction == "torch2keras" else "k2t", "h0" if h0 else "noh0",
    ])


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_layer_parity(case, rng):
    kind_id, bias, layers, bi, batch_first, dtype, direction, with_state = case
    kind, activation = KINDS[kind_id]
    skip_unless_float64_exact(dtype)
    torch_dtype = getattr(torch, dtype)
    if direction == "torch2keras":
        module = torch_layer(kind, activation, INPUT, HIDDEN, layers, bi, bias, batch_first,
                             torch_dtype)
        keras_obj = parity.to_keras(module)
        expected_type = (
            parity.TorchRNN if layers > 1 or bi else type(keras_obj)
        )
        assert isinstance(keras_obj, expected_type)
    else:
        keras_obj = keras_stack(kind, activation, INPUT, HIDDEN, layers, bi, bias, dtype, rng)
        if batch_first:
            module = parity.to_torch(keras_obj)
            assert module.batch_first
        else:
            # copy_weights into an existing time-major module, the other way in
            module = torch_layer(kind, activation, INPUT, HIDDEN, layers, bi, bias, False,
                                 torch_dtype)
            parity.copy_weights(keras_obj, module)
        assert module.num_layers == layers and module.bidirectional == bi
        assert module.bias == bias and next(module.parameters()).dtype == torch_dtype

    x = rng.normal(size=(BATCH, TIME, INPUT) if batch_first else (TIME, BATCH, INPUT))
    state = None
    if with_state:
        state = initial_state(kind, rng, layers * (2 if bi else 1), BATCH, HIDDEN, dtype)
    report = parity.assert_parity(
        module, keras_obj, x, initial_state=state, **parity.default_tolerance(dtype)
    )
    expected = ["outputs", "h_n", "c_n"] if kind == "lstm" else ["outputs", "h_n"]
    assert list(report.outputs) == expected
    assert report["h_n"].shape == (layers * (2 if bi else 1), BATCH, HIDDEN)
