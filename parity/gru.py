"""GRU <-> nn.GRU / nn.GRUCell (Keras `reset_after=True`).

PyTorch packs `weight_ih` rows as `(W_ir|W_iz|W_in)`; Keras packs `kernel`
columns as `(z|r|h)`: reset and update swap places. With `reset_after=True`
(the Keras 3 default) Keras computes PyTorch's formula
`n = tanh(W_in x + b_in + r * (W_hn h + b_hn))` and keeps both biases, as the
rows of `bias (2, 3*units)`: row 0 the input bias, row 1 the recurrent bias.
Nothing is summed, so the mapping is lossless both ways.
`reset_after=False` (the Keras 2 default) applies `r` before the recurrent
matmul; no PyTorch layer computes that, so `to_torch` gives a
`parity.torch_modules.KerasGRU`, which does. Its one Keras bias `(3*units,)`
maps like LSTM's: `bias = b_ih + b_hh`.
"""

import keras
import torch

from parity.activations import SUPPORTED
from parity.torch_modules import KerasGRU, KerasFormulaRNN
from parity.transforms import (
    to_keras_gates,
    to_torch_gates,
    split_bias,
    stack_biases,
    sum_biases,
    transpose,
    unstack_biases,
)

KIND = "gru"
TORCH_CELL = torch.nn.GRUCell
TORCH_LAYER = torch.nn.GRU
KERAS_CELL = keras.layers.GRUCell
KERAS_LAYER = keras.layers.GRU
STATES = ("h",)
TORCH_KERAS_FORMULA = KerasGRU


def _to_keras_gates(array):
    return to_keras_gates(KIND, array)


def _to_torch_gates(array):
    return to_torch_gates(KIND, array)


def torch_options(module):
    if isinstance(module, KerasFormulaRNN):
        return {
            "activation": module.activation,
            "recurrent_activation": module.recurrent_activation,
            "reset_after": module.reset_after,
        }
    return {}


def torch_native(spec):
    """Whether `nn.GRU` itself computes `spec` (else `KerasGRU` does)."""
    return (spec.activation == "tanh" and spec.recurrent_activation == "sigmoid" and spec.reset_after)


def torch_kwargs(spec):
    return {}


def keras_kwargs(spec):
    """Keras layer/cell arguments, also those of `KerasGRU`."""
    return {
        "activation": spec.activation,
        "recurrent_activation": spec.recurrent_activation,
        "reset_after": spec.reset_after,
    }


def keras_options(cell, check):
    return {
        "activation": check("activation", cell.activation, SUPPORTED),
        "recurrent_activation": check(
            "recurrent_activation", cell.recurrent_activation, SUPPORTED
        ),
        "reset_after": bool(cell.reset_after),
    }


def torch_to_keras(w, spec=None):
    keras_w = {
        "kernel": transpose(_to_keras_gates(w["weight_ih"])),
        "recurrent_kernel": transpose(_to_keras_gates(w["weight_hh"])),
    }
    if "bias_ih" in w:
        bias_ih, bias_hh = _to_keras_gates(w["bias_ih"]), _to_keras_gates(w["bias_hh"])
        if spec is not None and not spec.reset_after:
            # one bias (3*units,): b_hn sits outside r * (...), next to b_in
            keras_w["bias"] = sum_biases(bias_ih, bias_hh)
        else:
            keras_w["bias"] = stack_biases(bias_ih, bias_hh)
    return keras_w


def keras_to_torch(w, spec=None):
    torch_w = {
        "weight_ih": _to_torch_gates(transpose(w["kernel"])),
        "weight_hh": _to_torch_gates(transpose(w["recurrent_kernel"])),
    }
    if "bias" in w and spec is not None and not spec.reset_after:
        torch_w["bias_ih"], torch_w["bias_hh"] = split_bias(_to_torch_gates(w["bias"]))
    elif "bias" in w:
        bias_ih, bias_hh = unstack_biases(w["bias"])
        torch_w["bias_ih"] = _to_torch_gates(bias_ih)
        torch_w["bias_hh"] = _to_torch_gates(bias_hh)
    return torch_w
