"""LSTM <-> nn.LSTM / nn.LSTMCell.

PyTorch packs `weight_ih` rows as `(W_ii|W_if|W_ig|W_io)`; Keras packs
`kernel` columns as `(i|f|c|o)`: the same gates in the same order (PyTorch's
`g` is Keras's `c`), so only the transpose and the bias sum remain.
`bias = b_ih + b_hh`.
"""

import keras
import torch

from parity.transforms import (
    to_keras_gates,
    to_torch_gates,
    split_bias,
    sum_biases,
    transpose,
)

KIND = "lstm"
TORCH_CELL = torch.nn.LSTMCell
TORCH_LAYER = torch.nn.LSTM
KERAS_CELL = keras.layers.LSTMCell
KERAS_LAYER = keras.layers.LSTM
STATES = ("h", "c")


def _to_keras_gates(array):
    return to_keras_gates(KIND, array)


def _to_torch_gates(array):
    return to_torch_gates(KIND, array)


def torch_options(module):
    # `proj_size` is refused by the shared code in `recurrent.py`.
    return {}


def torch_kwargs(options):
    return {}


def keras_kwargs(options):
    return {}


def keras_options(cell, check):
    check("activation", cell.activation, ("tanh",))
    check("recurrent_activation", cell.recurrent_activation, ("sigmoid",))
    return {}


def torch_to_keras(w):
    keras_w = {
        "kernel": transpose(_to_keras_gates(w["weight_ih"])),
        "recurrent_kernel": transpose(_to_keras_gates(w["weight_hh"])),
    }
    if "bias_ih" in w:
        keras_w["bias"] = _to_keras_gates(sum_biases(w["bias_ih"], w["bias_hh"]))
    return keras_w


def keras_to_torch(w):
    torch_w = {
        "weight_ih": _to_torch_gates(transpose(w["kernel"])),
        "weight_hh": _to_torch_gates(transpose(w["recurrent_kernel"])),
    }
    if "bias" in w:
        torch_w["bias_ih"], torch_w["bias_hh"] = split_bias(_to_torch_gates(w["bias"]))
    return torch_w
