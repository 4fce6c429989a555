"""LSTM <-> nn.LSTM / nn.LSTMCell.

PyTorch packs `weight_ih` rows as `(W_ii|W_if|W_ig|W_io)`; Keras packs
`kernel` columns as `(i|f|c|o)`: the same gates in the same order (PyTorch's
`g` is Keras's `c`), so only the transpose and the bias sum remain.
`bias = b_ih + b_hh`.

`proj_size > 0` (PyTorch's projected LSTM, `weight_hr (proj, hidden)`)
converts to `parity.keras_layers.ProjectedLSTM`, whose
`projection_kernel (units, proj_units)` is `weight_hr` transposed.
"""

import keras
import torch

from parity.activations import SUPPORTED
from parity.keras_layers import ProjectedLSTM, ProjectedLSTMCell
from parity.torch_modules import KerasLSTM, KerasFormulaRNN
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
TORCH_KERAS_FORMULA = KerasLSTM
# PyTorch's proj_size: Keras has no layer for it, parity brings one.
EXTRA_TYPES = ((ProjectedLSTMCell, "cell"), (ProjectedLSTM, "layer"))


def _to_keras_gates(array):
    return to_keras_gates(KIND, array)


def _to_torch_gates(array):
    return to_torch_gates(KIND, array)


def torch_options(module):
    if isinstance(module, KerasFormulaRNN):
        return {
            "activation": module.activation,
            "recurrent_activation": module.recurrent_activation,
        }
    return {"proj_size": getattr(module, "proj_size", 0)}


def torch_native(spec):
    """Whether `nn.LSTM` itself computes `spec` (else `KerasLSTM` does)."""
    return (spec.activation == "tanh" and spec.recurrent_activation == "sigmoid")


def torch_kwargs(spec):
    return {"proj_size": spec.proj_size} if spec.proj_size else {}


def keras_kwargs(spec):
    """Keras layer/cell arguments, also those of `KerasLSTM`."""
    kwargs = {
        "activation": spec.activation,
        "recurrent_activation": spec.recurrent_activation,
    }
    if getattr(spec, "proj_size", 0):
        kwargs["proj_units"] = spec.proj_size
    return kwargs


def keras_layer_class(spec):
    """`ProjectedLSTM` for PyTorch's `proj_size > 0`, else `keras.layers.LSTM`."""
    return ProjectedLSTM if spec.proj_size else KERAS_LAYER


def keras_cell_class(spec):
    return ProjectedLSTMCell if spec.proj_size else KERAS_CELL


def keras_options(cell, check):
    return {
        "activation": check("activation", cell.activation, SUPPORTED),
        "recurrent_activation": check(
            "recurrent_activation", cell.recurrent_activation, SUPPORTED
        ),
        "proj_size": getattr(cell, "proj_units", 0),
    }


def torch_to_keras(w, spec=None):
    keras_w = {
        "kernel": transpose(_to_keras_gates(w["weight_ih"])),
        "recurrent_kernel": transpose(_to_keras_gates(w["weight_hh"])),
    }
    if "bias_ih" in w:
        keras_w["bias"] = _to_keras_gates(sum_biases(w["bias_ih"], w["bias_hh"]))
    if "weight_hr" in w:
        keras_w["projection_kernel"] = transpose(w["weight_hr"])
    return keras_w


def keras_to_torch(w, spec=None):
    torch_w = {
        "weight_ih": _to_torch_gates(transpose(w["kernel"])),
        "weight_hh": _to_torch_gates(transpose(w["recurrent_kernel"])),
    }
    if "bias" in w:
        torch_w["bias_ih"], torch_w["bias_hh"] = split_bias(_to_torch_gates(w["bias"]))
    if "projection_kernel" in w:
        torch_w["weight_hr"] = transpose(w["projection_kernel"])
    return torch_w
