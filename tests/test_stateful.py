"""Keras `stateful=True` <-> PyTorch explicit state passing (`StatefulRNN`)."""

import keras
import numpy as np
import pytest
import torch

import parity
from factories import KERAS_LAYERS, randomize_keras
from parity.torch_modules import StatefulRNN

BATCH, CHUNK, CHUNKS, INPUT, HIDDEN = 2, 4, 5, 3, 5


def stateful_keras(kind, layers, bi, rng):
    made = []
    for _ in range(layers):
        layer = KERAS_LAYERS[kind](HIDDEN, return_sequences=True, stateful=True)
        made.append(keras.layers.Bidirectional(layer) if bi else layer)
    model = keras.Sequential([keras.Input((None, INPUT), batch_size=BATCH), *made])
    return randomize_keras(model, rng)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers,bi", [(1, False), (2, False), (1, True)], ids=["1layer", "2layer", "bi"])
def test_chunk_by_chunk(kind, layers, bi, rng):
    keras_model = stateful_keras(kind, layers, bi, rng)
    wrapper = parity.to_torch(keras_model)
    assert isinstance(wrapper, StatefulRNN) and wrapper.batch_size == BATCH
    sequence = rng.normal(size=(BATCH, CHUNK * CHUNKS, INPUT))
    for k in range(CHUNKS):   # every chunk continues from the state the last one left
        chunk = sequence[:, k * CHUNK:(k + 1) * CHUNK]
        parity.assert_parity(wrapper, keras_model, chunk)
    if bi:
        return  # the backward direction of a chunk sees only that chunk: no whole-run twin
    # the state really was carried: the chunked run ends where one long run ends
    module = wrapper.module
    with torch.no_grad():
        whole, _ = module(torch.from_numpy(sequence.astype("float32")))
        wrapper.reset_state()
        for k in range(CHUNKS):
            last, _ = wrapper(torch.from_numpy(sequence[:, k * CHUNK:(k + 1) * CHUNK].astype("float32")))
    np.testing.assert_allclose(last.numpy(), whole[:, -CHUNK:].numpy(), atol=1e-6)


def test_reset_state_matches_keras(rng):
    keras_model = stateful_keras("gru", 1, False, rng)
    wrapper = parity.to_torch(keras_model)
    chunk = rng.normal(size=(BATCH, CHUNK, INPUT))
    first = parity.compare(wrapper, keras_model, chunk)
    second = parity.compare(wrapper, keras_model, chunk)
    assert first.ok and second.ok
    keras_model.layers[0].reset_state()
    wrapper.reset_state()
    third = parity.compare(wrapper, keras_model, chunk)
    assert third.ok
    # after a reset both sides start from zeros again: same as the first call
    with torch.no_grad():
        wrapper.reset_state()
        again, _ = wrapper(torch.from_numpy(chunk.astype("float32")))
        wrapper.reset_state()
        fresh, _ = wrapper.module(torch.from_numpy(chunk.astype("float32")))
    np.testing.assert_array_equal(again.numpy(), fresh.numpy())


def test_resetting_one_side_only_is_caught(rng):
    keras_model = stateful_keras("lstm", 1, False, rng)
    wrapper = parity.to_torch(keras_model)
    chunk = rng.normal(size=(BATCH, CHUNK, INPUT))
    parity.assert_parity(wrapper, keras_model, chunk)
    wrapper.reset_state()   # Keras keeps its state
    with pytest.raises(parity.ParityError):
        parity.assert_parity(wrapper, keras_model, chunk)


def test_initial_state_with_stateful_is_refused(rng):
    keras_model = stateful_keras("gru", 1, False, rng)
    wrapper = parity.to_torch(keras_model)
    with pytest.raises(parity.ConversionError, match="reset_state\\(\\) instead of passing initial_state"):
        parity.compare(wrapper, keras_model, rng.normal(size=(BATCH, CHUNK, INPUT)),
                       initial_state=np.zeros((1, BATCH, HIDDEN)))


def test_mixed_stateful_stack_is_refused():
    model = keras.Sequential([keras.Input((None, INPUT), batch_size=BATCH),
                              keras.layers.GRU(HIDDEN, return_sequences=True, stateful=True),
                              keras.layers.GRU(HIDDEN, return_sequences=True)])
    with pytest.raises(parity.ConversionError, match=r"mixes stateful and stateless.*Received: stateful=\[True, False\]"):
        parity.to_torch(model)


def test_stateful_wrapper_back_to_keras_is_a_clear_error():
    with pytest.raises(parity.ConversionError, match="not supported yet.*Received: StatefulRNN"):
        parity.to_keras(StatefulRNN(torch.nn.GRU(3, 4, batch_first=True), batch_size=2))


def test_gradients_of_a_stateful_wrapper_are_refused(rng):
    keras_model = stateful_keras("gru", 1, False, rng)
    wrapper = parity.to_torch(keras_model)
    with pytest.raises(parity.ConversionError, match="Received: StatefulRNN"):
        parity.compare_gradients(wrapper, keras_model, rng.normal(size=(BATCH, CHUNK, INPUT)), loss="sum")
