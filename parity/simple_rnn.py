"""SimpleRNN <-> nn.RNN / nn.RNNCell.

PyTorch: `h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`.
Keras:   `h_t = act(x_t kernel + bias + h_{t-1} recurrent_kernel)`.
So `kernel = W_ih^T`, `recurrent_kernel = W_hh^T`, `bias = b_ih + b_hh`.
"""

import keras
import torch

from parity.activations import SUPPORTED
from parity.torch_modules import KerasFormulaRNN, KerasSimpleRNN
from parity.transforms import split_bias, sum_biases, transpose

KIND = "rnn"
TORCH_CELL = torch.nn.RNNCell
TORCH_LAYER = torch.nn.RNN
KERAS_CELL = keras.layers.SimpleRNNCell
KERAS_LAYER = keras.layers.SimpleRNN
STATES = ("h",)
NATIVE_ACTIVATIONS = ("tanh", "relu")
TORCH_KERAS_FORMULA = KerasSimpleRNN


def torch_options(module):
    """Options of a torch module that change what it computes."""
    if isinstance(module, KerasFormulaRNN):
        return {"activation": module.activation}
    return {"activation": module.nonlinearity}


def torch_native(spec):
    """Whether `nn.RNN` itself computes `spec` (else `KerasSimpleRNN` does)."""
    return spec.activation in NATIVE_ACTIVATIONS


def torch_kwargs(spec):
    return {"nonlinearity": spec.activation}


def keras_kwargs(spec):
    """Keras layer/cell arguments, also those of `KerasSimpleRNN`."""
    return {"activation": spec.activation}


def keras_options(cell, check):
    """Options of a Keras cell; `check(option, value, supported)` raises for unsupported ones."""
    return {"activation": check("activation", cell.activation, SUPPORTED)}


def torch_to_keras(w, spec=None):
    keras_w = {
        "kernel": transpose(w["weight_ih"]),
        "recurrent_kernel": transpose(w["weight_hh"]),
    }
    if "bias_ih" in w:
        keras_w["bias"] = sum_biases(w["bias_ih"], w["bias_hh"])
    return keras_w


def keras_to_torch(w, spec=None):
    torch_w = {
        "weight_ih": transpose(w["kernel"]),
        "weight_hh": transpose(w["recurrent_kernel"]),
    }
    if "bias" in w:
        torch_w["bias_ih"], torch_w["bias_hh"] = split_bias(w["bias"])
    return torch_w
