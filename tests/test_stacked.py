"""`TorchRNN`, the Keras model for stacked / bidirectional PyTorch RNNs."""

import itertools

import keras
import numpy as np
import pytest
import torch

import parity
from factories import KINDS, torch_layer


def test_dropout_sits_between_layers_and_round_trips():
    module = torch.nn.LSTM(3, 4, num_layers=3, dropout=0.25)
    model = parity.to_keras(module)
    kinds = [type(layer).__name__ for layer in model.stack_layers()]
    assert kinds == ["LSTM", "Dropout", "LSTM", "Dropout", "LSTM"]
    assert all(d.rate == 0.25 for d in model.dropout_layers)
    assert parity.to_torch(model).dropout == 0.25


def test_sequential_with_dropout_between_converts():
    seq = keras.Sequential([
        keras.Input((None, 3)),
        keras.layers.GRU(4, return_sequences=True), keras.layers.Dropout(0.1),
        keras.layers.GRU(4, return_sequences=True),
    ])
    module = parity.to_torch(seq)
    assert module.num_layers == 2 and module.dropout == pytest.approx(0.1)
    parity.assert_parity(module, seq, np.random.default_rng(0).normal(size=(2, 5, 3)))


def test_dropout_rates_must_agree():
    seq = keras.Sequential([
        keras.Input((None, 3)),
        keras.layers.GRU(4, return_sequences=True), keras.layers.Dropout(0.1),
        keras.layers.GRU(4, return_sequences=True), keras.layers.Dropout(0.2),
        keras.layers.GRU(4),
    ])
    with pytest.raises(parity.ConversionError, match=r"one dropout rate.*Received: Dropout rates \[0.1, 0.2\]"):
        parity.to_torch(seq)


def test_dropout_is_active_in_training_only(rng):
    model = parity.to_keras(torch.nn.GRU(3, 4, num_layers=2, dropout=0.9))
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    a = keras.ops.convert_to_numpy(model(x, training=False)[0])
    b = keras.ops.convert_to_numpy(model(x, training=False)[0])
    np.testing.assert_array_equal(a, b)
    c = keras.ops.convert_to_numpy(model(x, training=True)[0])
    assert not np.allclose(a, c)


def test_save_and_reload_keras_file(tmp_path, rng):
    module = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    model = parity.to_keras(module)
    path = tmp_path / "lstm.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(reloaded, parity.TorchRNN)
    assert reloaded.get_config()["num_layers"] == 2
    x = rng.normal(size=(2, 5, 3))
    parity.assert_parity(module, reloaded, x)
    for a, b in zip(model.get_weights(), reloaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_symbolic_call_and_output_shapes():
    model = parity.TorchRNN("gru", input_size=3, hidden_size=5, num_layers=2, bidirectional=True)
    inputs = keras.Input((7, 3))
    outputs = model(inputs)
    assert [tuple(o.shape) for o in outputs] == [(None, 7, 10), (4, None, 5)]
    with pytest.raises(ValueError, match="Received: kind='transformer'"):
        parity.TorchRNN("transformer", 3, 5)


ODD = list(itertools.product(KINDS, [(1, 1, 1, 1), (1, 1, 2, 3), (3, 4, 1, 1)], [1, 2], ["t2k", "k2t"]))


@pytest.mark.parametrize(
    "kind_id,sizes,layers,direction", ODD,
    ids=[f"{k}-b{s[0]}t{s[1]}i{s[2]}h{s[3]}-{n}layer-{d}" for k, s, n, d in ODD],
)
def test_odd_sizes(kind_id, sizes, layers, direction, rng):
    batch, time, input_size, hidden = sizes
    kind, activation = KINDS[kind_id]
    module = torch_layer(kind, activation, input_size, hidden, layers, bidirectional=layers == 2,
                         batch_first=True)
    if direction == "t2k":
        keras_obj = parity.to_keras(module)
    else:
        keras_obj = parity.to_keras(module)
        keras_obj.set_weights([rng.normal(size=w.shape).astype(w.dtype) for w in keras_obj.get_weights()])
        module = parity.to_torch(keras_obj)
    parity.assert_parity(module, keras_obj, rng.normal(size=(batch, time, input_size)))
