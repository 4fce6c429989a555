"""Round trips: torch -> keras -> torch computes the same; keras -> torch -> keras
gives back identical Keras weights, bit for bit."""

import itertools

import numpy as np
import pytest
import torch

import parity
from factories import KINDS, keras_stack, keras_weights, torch_layer

CASES = list(itertools.product(KINDS, (1, 2), (False, True), (True, False)))


def case_id(case):
    kind, layers, bi, bias = case
    return f"{kind}-{layers}layer-{'bi' if bi else 'uni'}-{'bias' if bias else 'nobias'}"


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_torch_keras_torch(case, rng):
    kind_id, layers, bi, bias = case
    kind, activation = KINDS[kind_id]
    module = torch_layer(kind, activation, 3, 4, layers, bi, bias, batch_first=True)
    back = parity.to_torch(parity.to_keras(module))
    assert type(back) is type(module)
    x = torch.from_numpy(rng.normal(size=(2, 5, 3)).astype("float32"))
    with torch.no_grad():
        out_a, state_a = module(x)
        out_b, state_b = back(x)
    states_a = state_a if isinstance(state_a, tuple) else (state_a,)
    states_b = state_b if isinstance(state_b, tuple) else (state_b,)
    for name, a, b in zip(["outputs", "h_n", "c_n"], (out_a, *states_a), (out_b, *states_b)):
        parity.tolerance.assert_allclose_named(name, b.numpy(), a.numpy(), 1e-6, 1e-6)
    if kind == "gru":
        # GRU keeps both biases in Keras: the round trip is lossless.
        for key, value in module.state_dict().items():
            assert torch.equal(back.state_dict()[key], value), key


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_keras_torch_keras_bit_exact(case, rng):
    kind_id, layers, bi, bias = case
    kind, activation = KINDS[kind_id]
    original = keras_stack(kind, activation, 3, 4, layers, bi, bias, rng=rng)
    again = parity.to_keras(parity.to_torch(original))
    before, after = keras_weights(original), keras_weights(again)
    assert [w.shape for w in after] == [w.shape for w in before]
    for a, b in zip(after, before):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_cells_round_trip_bit_exact(kind, rng):
    module = parity.to_torch(parity.to_keras(
        {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[kind](3, 4)
    ))
    keras_cell = parity.to_keras(module)
    again = parity.to_keras(parity.to_torch(keras_cell))
    for a, b in zip(keras_weights(again), keras_weights(keras_cell)):
        np.testing.assert_array_equal(a, b)
