"""Layers without weights that whole `Sequential` models carry: dropout and activations.

| PyTorch            | Keras                                          |
|--------------------|------------------------------------------------|
| `nn.Dropout(p)`    | `Dropout(p)`                                   |
| `nn.ReLU()`        | `ReLU()` (default arguments), `Activation("relu")` |
| `nn.Tanh()`        | `Activation("tanh")`                           |
| `nn.Sigmoid()`     | `Activation("sigmoid")`                        |
| `nn.Softmax(dim=-1)` | `Softmax(axis=-1)`, `Activation("softmax")`  |
| `nn.Identity()`    | `Activation("linear")`                         |
| `parity.torch_modules.Masking(v)` | `Masking(v)`                    |
"""

import keras
import torch

from parity.errors import ConversionError
from parity.torch_modules import Masking

KERAS_ACTIVATIONS = {"tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid,
                     "relu": torch.nn.ReLU, "linear": torch.nn.Identity}


def is_torch_weightless(module):
    return isinstance(module, (torch.nn.Dropout, torch.nn.ReLU, torch.nn.Tanh,
                               torch.nn.Sigmoid, torch.nn.Softmax, torch.nn.Identity,
                               Masking))


def torch_to_keras(module, name=None):
    """The Keras layer for a weightless torch module."""
    kwargs = {"name": name} if name else {}
    if isinstance(module, Masking):
        return keras.layers.Masking(module.mask_value, **kwargs)
    if isinstance(module, torch.nn.Dropout):
        return keras.layers.Dropout(module.p, **kwargs)
    if isinstance(module, torch.nn.ReLU):
        return keras.layers.ReLU(**kwargs)
    if isinstance(module, torch.nn.Tanh):
        return keras.layers.Activation("tanh", **kwargs)
    if isinstance(module, torch.nn.Sigmoid):
        return keras.layers.Activation("sigmoid", **kwargs)
    if isinstance(module, torch.nn.Identity):
        return keras.layers.Activation("linear", **kwargs)
    if isinstance(module, torch.nn.Softmax):
        if module.dim != -1:
            raise ConversionError(
                f"nn.Softmax {name or ''}: only dim=-1 converts (Keras's Softmax "
                f"axis is fixed at build time, PyTorch's positive dims depend on "
                f"the input rank). Received: dim={module.dim}"
            )
        return keras.layers.Softmax(axis=-1, **kwargs)
    raise ConversionError(
        f"{type(module).__name__} {name or ''}: not a layer parity converts. "
        f"Received: {type(module).__module__}.{type(module).__name__}"
    )


def keras_to_torch(layer):
    """The torch module for a weightless Keras layer, or `None` for an `InputLayer`."""
    where = f"{type(layer).__name__} {layer.name!r}"
    if isinstance(layer, keras.layers.InputLayer):
        return None
    if isinstance(layer, keras.layers.Dropout):
        if layer.noise_shape is not None:
            raise ConversionError(
                f"{where}: noise_shape has no nn.Dropout equivalent. "
                f"Received: noise_shape={layer.noise_shape}"
            )
        return torch.nn.Dropout(layer.rate)
    if isinstance(layer, keras.layers.ReLU):
        if layer.max_value is not None or layer.negative_slope or layer.threshold:
            raise ConversionError(
                f"{where}: only the plain ReLU converts. Received: max_value="
                f"{layer.max_value}, negative_slope={layer.negative_slope}, "
                f"threshold={layer.threshold}"
            )
        return torch.nn.ReLU()
    if isinstance(layer, keras.layers.Softmax):
        if layer.axis != -1:
            raise ConversionError(f"{where}: only axis=-1 converts. Received: axis={layer.axis}")
        return torch.nn.Softmax(dim=-1)
    if isinstance(layer, keras.layers.Activation):
        name = getattr(layer.activation, "__name__", repr(layer.activation))
        if name == "softmax":
            return torch.nn.Softmax(dim=-1)
        if name not in KERAS_ACTIVATIONS:
            raise ConversionError(
                f"{where}: activation {name!r} is not converted (supported: "
                f"{', '.join(sorted([*KERAS_ACTIVATIONS, 'softmax']))}). "
                f"Received: activation={name!r}"
            )
        return KERAS_ACTIVATIONS[name]()
    raise ConversionError(
        f"{where}: not a layer parity converts. Received: "
        f"{type(layer).__module__}.{type(layer).__name__}"
    )
