"""Keras activations that PyTorch modules can compute exactly, by name.

Keras 3's `hard_sigmoid` is `relu6(x + 3) / 6` (Keras 2 used `0.2 x + 0.5`):
it is written here in the same operation order as Keras's TensorFlow
backend, so float32 results round the same way.
"""

import torch
import torch.nn.functional as F

TORCH_ACTIVATIONS = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": lambda x: torch.clamp(x + 3.0, 0.0, 6.0) / 6.0,
    "relu": torch.relu,
    "linear": lambda x: x,
    "softsign": F.softsign,
}
SUPPORTED = tuple(TORCH_ACTIVATIONS)


def activation_name(value):
    """`keras.activations.tanh` or `"tanh"` -> `"tanh"`."""
    if isinstance(value, str):
        return value
    return getattr(value, "__name__", repr(value))
