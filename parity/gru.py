"""GRU <-> nn.GRU / nn.GRUCell (Keras `reset_after=True`).

PyTorch packs `weight_ih` rows as `(W_ir|W_iz|W_in)`; Keras packs `kernel`
columns as `(z|r|h)`: reset and update swap places. With `reset_after=True`
(the Keras 3 default) Keras computes PyTorch's formula
`n = tanh(W_in x + b_in + r * (W_hn h + b_hn))` and keeps both biases, as the
rows of `bias (2, 3*units)`: row 0 the input bias, row 1 the recurrent bias.
Nothing is summed, so the mapping is lossless both ways.
`reset_after=False` (the Keras 2 default) applies `r` before the recurrent
matmul; no PyTorch layer computes that, so it is refused.
"""

import keras
import torch

from parity.transforms import (
    to_keras_gates,
    to_torch_gates,
    stack_biases,
    transpose,
    unstack_biases,
)

KIND = "gru"
TORCH_CELL = torch.nn.GRUCell
TORCH_LAYER = torch.nn.GRU
KERAS_CELL = keras.layers.GRUCell
KERAS_LAYER = keras.layers.GRU
STATES = ("h",)


def _to_keras_gates(array):
    return to_keras_gates(KIND, array)


def _to_torch_gates(array):
    return to_torch_gates(KIND, array)


def torch_options(module):
    return {}


def torch_kwargs(options):
    return {}


def keras_kwargs(options):
    return {"reset_after": True}


def keras_options(cell, check):
    check("activation", cell.activation, ("tanh",))
    check("recurrent_activation", cell.recurrent_activation, ("sigmoid",))
    check("reset_after", cell.reset_after, (True,))
    return {}


def torch_to_keras(w):
    keras_w = {
        "kernel": transpose(_to_keras_gates(w["weight_ih"])),
        "recurrent_kernel": transpose(_to_keras_gates(w["weight_hh"])),
    }
    if "bias_ih" in w:
        keras_w["bias"] = stack_biases(
            _to_keras_gates(w["bias_ih"]), _to_keras_gates(w["bias_hh"])
        )
    return keras_w


def keras_to_torch(w):
    torch_w = {
        "weight_ih": _to_torch_gates(transpose(w["kernel"])),
        "weight_hh": _to_torch_gates(transpose(w["recurrent_kernel"])),
    }
    if "bias" in w:
        bias_ih, bias_hh = unstack_biases(w["bias"])
        torch_w["bias_ih"] = _to_torch_gates(bias_ih)
        torch_w["bias_hh"] = _to_torch_gates(bias_hh)
    return torch_w
