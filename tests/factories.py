"""Builders shared by the parity tests: random torch modules and Keras objects."""

import keras
import numpy as np
import torch

KINDS = {
    # test id -> (parity kind, SimpleRNN activation)
    "rnn-tanh": ("rnn", "tanh"),
    "rnn-relu": ("rnn", "relu"),
    "lstm": ("lstm", "tanh"),
    "gru": ("gru", "tanh"),
}
TORCH_LAYERS = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
TORCH_CELLS = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}
KERAS_LAYERS = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
KERAS_CELLS = {"rnn": keras.layers.SimpleRNNCell, "lstm": keras.layers.LSTMCell,
               "gru": keras.layers.GRUCell}
NUM_STATES = {"rnn": 1, "lstm": 2, "gru": 1}


def torch_kwargs(kind, activation):
    return {"nonlinearity": activation} if kind == "rnn" else {}


def keras_kwargs(kind, activation):
    return {"activation": activation} if kind == "rnn" else {}


def torch_layer(kind, activation, input_size, hidden, num_layers=1, bidirectional=False,
                bias=True, batch_first=False, dtype=torch.float32, dropout=0.0):
    module = TORCH_LAYERS[kind](
        input_size, hidden, num_layers=num_layers, bias=bias, batch_first=batch_first,
        bidirectional=bidirectional, dropout=dropout, **torch_kwargs(kind, activation),
    )
    return module.to(dtype)


def randomize_keras(obj, rng, scale=0.5):
    """Random normal weights everywhere, so that biases are non-zero too."""
    obj.set_weights([
        (rng.normal(size=w.shape) * scale).astype(w.dtype) for w in obj.get_weights()
    ])
    return obj


def keras_stack(kind, activation, input_size, hidden, num_layers=1, bidirectional=False,
                bias=True, dtype="float32", rng=None):
    """A Keras recurrent object as a user would write it.

    One layer: the bare layer (or `Bidirectional`); more: a `keras.Sequential`.
    The layers return sequences but not states, so `compare` has to get the
    final states itself.
    """
    layers = []
    for _ in range(num_layers):
        layer = KERAS_LAYERS[kind](hidden, return_sequences=True, use_bias=bias, dtype=dtype,
                                   **keras_kwargs(kind, activation))
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, dtype=dtype)
        layers.append(layer)
    if num_layers == 1:
        obj = layers[0]
        obj.build((None, None, input_size))
    else:
        obj = keras.Sequential([keras.Input((None, input_size), dtype=dtype), *layers])
    if rng is not None:
        randomize_keras(obj, rng)
    return obj


def initial_state(kind, rng, slots, batch, hidden, dtype):
    states = tuple(
        rng.normal(size=(slots, batch, hidden)).astype(dtype) for _ in range(NUM_STATES[kind])
    )
    return states if kind == "lstm" else states[0]


def keras_weights(obj):
    return [np.array(w) for w in obj.get_weights()]


def torch_weights(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def skip_unless_float64_exact(dtype):
    """Skips a float64 case on a Keras backend that does not compute float64 exactly.

    The reason printed is what `parity.backends.float64_problems` found; the
    tolerance is never loosened instead.
    """
    import pytest

    from parity.backends import float64_problems

    if str(dtype).endswith("float64") and float64_problems():
        pytest.skip("float64 is not exact on this Keras backend: " + "; ".join(float64_problems()))
