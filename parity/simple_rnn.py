"""SimpleRNN <-> nn.RNN / nn.RNNCell.

PyTorch: `h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`.
Keras:   `h_t = act(x_t kernel + bias + h_{t-1} recurrent_kernel)`.
So `kernel = W_ih^T`, `recurrent_kernel = W_hh^T`, `bias = b_ih + b_hh`.
"""

import keras
import torch

from parity.transforms import split_bias, sum_biases, transpose

KIND = "rnn"
TORCH_CELL = torch.nn.RNNCell
TORCH_LAYER = torch.nn.RNN
KERAS_CELL = keras.layers.SimpleRNNCell
KERAS_LAYER = keras.layers.SimpleRNN
STATES = ("h",)
ACTIVATIONS = ("tanh", "relu")


def torch_options(module):
    """Options of a torch module that change what it computes."""
    return {"activation": module.nonlinearity}


def torch_kwargs(options):
    return {"nonlinearity": options["activation"]}


def keras_kwargs(options):
    return {"activation": options["activation"]}


def keras_options(cell, check):
    """Options of a Keras cell; `check(option, value, supported)` raises for unsupported ones."""
    activation = check("activation", cell.activation, ACTIVATIONS)
    return {"activation": activation}


def torch_to_keras(w):
    keras_w = {
        "kernel": transpose(w["weight_ih"]),
        "recurrent_kernel": transpose(w["weight_hh"]),
    }
    if "bias_ih" in w:
        keras_w["bias"] = sum_biases(w["bias_ih"], w["bias_hh"])
    return keras_w


def keras_to_torch(w):
    torch_w = {
        "weight_ih": transpose(w["kernel"]),
        "weight_hh": transpose(w["recurrent_kernel"]),
    }
    if "bias" in w:
        torch_w["bias_ih"], torch_w["bias_hh"] = split_bias(w["bias"])
    return torch_w
