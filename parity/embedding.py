"""Embedding <-> nn.Embedding.

Both store the table as `(num_embeddings, embedding_dim)`: the weight is
copied as it is. `padding_idx` (PyTorch) only freezes one row's gradient and
`mask_zero` (Keras) only adds a mask for later layers: neither changes the
looked-up vectors, so both convert and are reported in the docs. PyTorch's
`max_norm` rewrites rows at lookup time; Keras has no such option, so it is
refused.
"""

import keras
import torch

from parity.errors import ConversionError
from parity.plain import PLAIN_DESCRIBE, PlainSpec, keras_dtype, torch_dtype
from parity.torch_modules import build_uninitialized

KIND = "embedding"
TORCH_TYPE = torch.nn.Embedding
KERAS_TYPE = keras.layers.Embedding


def describe(spec):
    return (
        f"Embedding(num_embeddings={spec.input_size}, "
        f"embedding_dim={spec.output_size}, {spec.dtype})"
    )


PLAIN_DESCRIBE[KIND] = describe


def torch_spec(module):
    if module.max_norm is not None:
        raise ConversionError(
            f"Embedding: max_norm={module.max_norm} renormalises rows at lookup "
            f"time; Keras's Embedding has no equivalent. "
            f"Received: max_norm={module.max_norm}"
        )
    return PlainSpec(
        KIND, module.num_embeddings, module.embedding_dim, False, torch_dtype(module)
    )


def keras_spec(layer):
    dtype = keras_dtype(layer)
    return PlainSpec(KIND, int(layer.input_dim), int(layer.output_dim), False, dtype)


def build_torch(spec, initialize=True):
    """`initialize=False`: uninitialised memory, for callers that overwrite every weight."""
    if not initialize:
        return build_uninitialized(build_torch, spec)
    module = torch.nn.Embedding(spec.input_size, spec.output_size)
    return module.to(getattr(torch, spec.dtype))


def build_keras(spec, name=None, initialize=True):
    """`initialize=False`: unfilled weights, Keras's initialiser kept for `get_config()`."""
    from parity.recurrent import unfilled

    layer = keras.layers.Embedding(spec.input_size, spec.output_size, dtype=spec.dtype, name=name)
    with unfilled([] if initialize else [layer], ("embeddings_initializer",)):
        layer.build((None,))
    return layer


def keras_targets(layer):
    return {"embeddings": layer.embeddings}


def torch_to_keras(w):
    return {"embeddings": w["weight"]}


def keras_to_torch(w):
    return {"weight": w["embeddings"]}
