"""What the active Keras backend computes exactly, found by probing it.

Keras runs on TensorFlow, JAX or PyTorch (`KERAS_BACKEND`). Not all of them
compute float64 in float64: Keras's torch backend runs float64 matmuls in
float32, and on JAX float64 needs `JAX_ENABLE_X64=1` (and even then some
Keras ops, such as `tanh`, return float32). Rather than trusting a list of
backend names, `float64_problems()` runs the operations a recurrent layer
uses on a float64 value whose last bits matter and reports what it sees.
`compare` adds these lines to its report for float64 comparisons, so that a
failure says why; tolerances are never loosened for them.
"""

import functools

import keras
import numpy as np

# 1 + 2**-40 is exact in float64 and rounds to 1 in float32.
_PROBE = 1.0 + 2.0 ** -40


@functools.lru_cache(maxsize=None)
def float64_problems(backend=None):
    """Reasons the active backend does not compute float64 exactly (empty if it does).

    Args:
        backend: cache key only; defaults to `keras.backend.backend()`.

    Returns:
        A tuple of sentences, e.g. `("matmul computes float64 in float32",)`.
    """
    backend = backend or keras.backend.backend()
    ops = keras.ops
    problems = []
    if backend == "jax":
        import jax

        if not jax.config.jax_enable_x64:
            problems.append("JAX runs float64 as float32 unless JAX_ENABLE_X64=1 is set "
                            "before jax is imported")
    x = ops.convert_to_tensor(np.array([[_PROBE]]), dtype="float64")
    product = ops.convert_to_numpy(ops.matmul(x, ops.ones((1, 1), dtype="float64")))
    if product.dtype != np.float64 or product[0, 0] == 1.0:
        problems.append(f"matmul computes float64 in float32 on the {backend} backend")
    for name in ("tanh", "sigmoid", "relu"):
        result = getattr(ops, name)(x)
        if keras.backend.standardize_dtype(result.dtype) != "float64":
            problems.append(f"keras.ops.{name} returns {result.dtype} for float64 input "
                            f"on the {backend} backend")
    return tuple(problems)
