"""Dense <-> nn.Linear.

PyTorch: `y = x W^T + b`, `weight (out, in)`. Keras: `y = x kernel + bias`,
`kernel (in, out)`. So `kernel = W^T`. Only a linear `Dense` converts:
`nn.Linear` has no activation.
"""

import keras
import torch

from parity.errors import ConversionError
from parity.plain import PLAIN_DESCRIBE, PlainSpec, keras_dtype, torch_dtype
from parity.torch_modules import build_uninitialized
from parity.transforms import transpose

KIND = "dense"
TORCH_TYPE = torch.nn.Linear
KERAS_TYPE = keras.layers.Dense


def describe(spec):
    return (
        f"Linear(in_features={spec.input_size}, out_features={spec.output_size}, "
        f"bias={spec.bias}, {spec.dtype})"
    )


PLAIN_DESCRIBE[KIND] = describe


def torch_spec(module):
    return PlainSpec(
        KIND, module.in_features, module.out_features, module.bias is not None,
        torch_dtype(module),
    )


def keras_spec(layer):
    activation = getattr(layer.activation, "__name__", repr(layer.activation))
    if activation != "linear":
        raise ConversionError(
            f"Dense {layer.name!r}: activation={activation!r}; nn.Linear has no "
            f"activation (add the activation as its own layer). "
            f"Received: activation={activation!r}"
        )
    dtype = keras_dtype(layer)
    if len(layer.kernel.shape) != 2:
        raise ConversionError(
            f"Dense {layer.name!r}: kernel must be 2-D. "
            f"Received: kernel.shape={tuple(layer.kernel.shape)}"
        )
    return PlainSpec(
        KIND, int(layer.kernel.shape[0]), int(layer.units), bool(layer.use_bias), dtype
    )


def build_torch(spec, initialize=True):
    """`initialize=False`: uninitialised memory, for callers that overwrite every weight."""
    if not initialize:
        return build_uninitialized(build_torch, spec)
    module = torch.nn.Linear(spec.input_size, spec.output_size, bias=spec.bias)
    return module.to(getattr(torch, spec.dtype))


def build_keras(spec, name=None, initialize=True):
    """`initialize=False`: unfilled weights, Keras's initialisers kept for `get_config()`."""
    from parity.recurrent import unfilled

    layer = keras.layers.Dense(spec.output_size, use_bias=spec.bias, dtype=spec.dtype, name=name)
    with unfilled([] if initialize else [layer], ("kernel_initializer", "bias_initializer")):
        layer.build((None, spec.input_size))
    return layer


def keras_targets(layer):
    targets = {"kernel": layer.kernel}
    if layer.use_bias:
        targets["bias"] = layer.bias
    return targets


def torch_to_keras(w):
    keras_w = {"kernel": transpose(w["weight"])}
    if "bias" in w:
        keras_w["bias"] = w["bias"]
    return keras_w


def keras_to_torch(w):
    torch_w = {"weight": transpose(w["kernel"])}
    if "bias" in w:
        torch_w["bias"] = w["bias"]
    return torch_w
