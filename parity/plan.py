"""Validate every weight, then write: a copy either happens whole or not at all.

A plan is `{key: array}` (what the source gives, already in the destination
layout) against `{key: target}` (the destination's variables or
parameters). All problems — missing keys, unexpected keys, wrong shapes,
wrong dtypes — are collected and raised as one `ConversionError` before the
first write, so a failed copy leaves the destination as it was.
"""


import keras
import numpy as np
import torch

from parity import fastcopy
from parity.dtypes import dtype_name
from parity.errors import ConversionError


def _target_path(target):
    return getattr(target, "path", None)


def check_plan(arrays, targets, dst_label, source_names=None):
    """Raises one `ConversionError` listing every mismatch between `arrays` and `targets`.

    Args:
        arrays: `{key: np.ndarray}` in the destination layout.
        targets: `{key: keras.Variable | torch.nn.Parameter}`.
        dst_label: the destination's name, for the message.
        source_names: optional `{key: str}`, where each array came from.
    """
    source_names = source_names or {}
    problems = []
    for key in targets:
        if key not in arrays:
            problems.append(f"missing weight {key!r}: the source has nothing for it")
    for key in arrays:
        if key not in targets:
            problems.append(f"unexpected weight {key!r}: the destination has no such weight")
    for key, target in targets.items():
        if key not in arrays:
            continue
        array = arrays[key]
        where = f"weight {key!r}"
        if _target_path(target):
            where += f" ({_target_path(target)})"
        if key in source_names:
            where += f" from {source_names[key]}"
        expected_shape = tuple(target.shape)
        if tuple(array.shape) != expected_shape:
            problems.append(
                f"{where}: expected shape {expected_shape}, received {tuple(array.shape)}"
            )
        elif dtype_name(array.dtype) != dtype_name(target.dtype):
            problems.append(
                f"{where}: expected dtype {dtype_name(target.dtype)}, "
                f"received {dtype_name(array.dtype)}"
            )
    if problems:
        raise ConversionError(
            f"Cannot write the weights of {dst_label}; nothing was written:\n  "
            + "\n  ".join(problems)
            + f"\nReceived: {len(problems)} problem(s), first: {problems[0]}"
        )


def write_plan(arrays, targets, adopt=False):
    """Writes every array into its target (call `check_plan` first).

    An array a transform made (`fastcopy.owns_its_memory`) is not copied again
    where the destination can take its buffer: a Keras variable on TensorFlow
    takes the tensor `fastcopy.transpose` made; with `adopt=True` (the
    destination was just built by `to_torch`, and nothing else refers to its
    parameters' memory) a CPU parameter takes the array's buffer as its storage.
    """
    adopted = set()  # an array under two keys is adopted once: parameters never share
    for key, target in targets.items():
        array = arrays[key]
        if isinstance(target, torch.nn.Parameter) and not isinstance(target, keras.Variable):
            if (adopt and target.device.type == "cpu" and id(array) not in adopted
                    and fastcopy.owns_its_memory(array)):
                target.data = fastcopy.adoptable_torch_tensor(array)
                adopted.add(id(array))
                continue
            with torch.no_grad():
                # A read-only source view (`Side.arrays(copy=False)`): `copy_` only reads it.
                target.copy_(fastcopy.torch_view(np.ascontiguousarray(array)))
            continue
        tensor = fastcopy.fresh_tensorflow_tensor(array)
        if tensor is not None and keras.backend.backend() == "tensorflow":
            target.assign(tensor)  # the variable takes the new buffer
        else:
            target.assign(np.ascontiguousarray(array))


def is_keras(obj):
    if isinstance(obj, (list, tuple)):
        return len(obj) > 0 and all(isinstance(o, keras.layers.Layer) for o in obj)
    return isinstance(obj, keras.layers.Layer)


def is_torch(obj):
    # On Keras's torch backend every Keras layer is also a torch.nn.Module.
    return isinstance(obj, torch.nn.Module) and not isinstance(obj, keras.layers.Layer)
