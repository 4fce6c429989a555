"""Shared machinery for the plain (non-recurrent) layers: `Dense`, `Embedding`.

Each plain module (`dense.py`, `embedding.py`) names its classes, its
config mapping and its weight transforms; this module reads specs and
targets the same way for all of them.
"""

import dataclasses

import keras

from parity.dtypes import single_dtype
from parity.errors import ConversionError


@dataclasses.dataclass(frozen=True)
class PlainSpec:
    """`nn.Linear(in, out)` / `nn.Embedding(num, dim)` in one shape.

    For `Embedding`, `input_size` is `num_embeddings` and `output_size`
    is `embedding_dim`.
    """

    ARCHITECTURE_FIELDS = ("kind", "input_size", "output_size", "bias", "dtype")

    kind: str
    input_size: int
    output_size: int
    bias: bool
    dtype: str

    def __str__(self):
        return PLAIN_DESCRIBE[self.kind](self)


# kind -> function(spec) -> str, filled by each plain module.
PLAIN_DESCRIBE = {}

def torch_dtype(module):
    where = type(module).__name__
    return single_dtype([p.dtype for p in module.parameters()], where, ConversionError)


def keras_dtype(layer):
    """The dtype of a built plain Keras layer, refusing what PyTorch cannot compute."""
    where = f"{type(layer).__name__} {layer.name!r}"
    if not layer.built or not layer.weights:
        raise ConversionError(
            f"{where}: the layer is not built, so it has no weights to convert; "
            f"call it on an input or `build()` it first. Received: built={layer.built}"
        )
    if getattr(layer, "lora_enabled", False):
        raise ConversionError(
            f"{where}: LoRA weights are not converted; merge them into the layer "
            f"first. Received: lora_rank={layer.lora_rank}"
        )
    dtype = single_dtype([v.dtype for v in layer.weights], where, ConversionError)
    if keras.backend.standardize_dtype(layer.compute_dtype) != dtype:
        raise ConversionError(
            f"{where}: computes in {layer.compute_dtype} with {dtype} weights (a "
            f"mixed-precision policy); PyTorch computes in the weights' dtype. "
            f"Received: dtype_policy={layer.dtype_policy.name!r}"
        )
    return dtype
