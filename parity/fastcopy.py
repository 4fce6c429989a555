"""Conversion at memory speed: fast transposes, and fresh results handed over without a copy.

Converting a recurrent layer is mostly transposing its weight matrices
(PyTorch `(out, in)` <-> Keras `(in, out)`). numpy's `ascontiguousarray(a.T)`
walks one side with a stride of a whole row and ran ~20x slower than a copy
of the same matrix; TensorFlow's transpose kernel (Eigen, cache-blocked)
runs at about the speed of a copy, PyTorch's at ~4x. So, where this process
has TensorFlow loaded (Keras's default backend), `transpose` runs TensorFlow's
kernel straight on the source's memory (zero-copy through DLPack where the
buffer is aligned as TensorFlow requires) and returns a read-only numpy view
of the result.

Such a result is fresh: nothing else refers to its buffer. The writers
(`parity.plan.write_plan`) then give it to the destination without copying
it again: a Keras variable on TensorFlow takes the tensor itself (TensorFlow
copies on a later in-place update if the buffer were still shared), and a
module `to_torch` has just built takes it as its parameter's storage. Every
other array (a read-only view of the source, a small bias) is copied as before.
All of it moves bits only: results are bit-exact, `-0.0` and NaN payloads
included.

Without TensorFlow loaded (Keras's torch or JAX backend) `transpose` uses
PyTorch's kernel for large matrices and numpy's for small ones, and every
write copies.
"""

import sys
import warnings
import weakref

import numpy as np
import torch

# TensorFlow aborts the whole process (a failed CHECK, not an exception) when
# given a buffer less aligned than this: such buffers are copied in instead.
TENSORFLOW_ALIGNMENT = 64
# Below this many elements numpy's own transpose is as fast as anything else.
MIN_FAST_ELEMENTS = 1 << 14
FAST_DTYPES = (np.dtype("float16"), np.dtype("float32"), np.dtype("float64"))

# id(array) -> the TensorFlow tensor whose buffer `array` is a view of, for
# arrays `transpose` returned (the entry goes when the array does).
_fresh_tensors = {}


def _tensorflow():
    """TensorFlow, if this process has finished importing it (it is never imported here).

    `to_keras` runs the transforms in a second thread while Keras builds the
    layers, and that build may be what imports TensorFlow: a module still
    being imported is in `sys.modules` half made, so it is not used.
    """
    tf = sys.modules.get("tensorflow")
    if tf is None or getattr(getattr(tf, "__spec__", None), "_initializing", False):
        return None
    return tf


def _fast(array):
    return array.ndim == 2 and array.size >= MIN_FAST_ELEMENTS and array.dtype in FAST_DTYPES


def transpose(array):
    """`array.T` as a new C-contiguous array (read-only where TensorFlow made it)."""
    if not _fast(array):
        return np.ascontiguousarray(array.T)
    tf = _tensorflow()
    if tf is None:
        return torch_view(array).t().contiguous().numpy()
    result = tf.transpose(_as_tensorflow(tf, array))
    view = np.asarray(result)  # shares the result's buffer, and keeps it alive
    _fresh_tensors[id(view)] = result
    weakref.finalize(view, _fresh_tensors.pop, id(view), None)
    return view


def fresh_tensorflow_tensor(array):
    """The TensorFlow tensor `array` is a view of, if `transpose` made it; else `None`."""
    return _fresh_tensors.get(id(array))


def owns_its_memory(array):
    """True where nothing else refers to `array`'s buffer: a transform's new array.

    `transpose`'s results and arrays numpy allocated for the transforms
    (concatenated gates, summed or split biases). Views of a source's
    weights (`parity.convert.Side.arrays(copy=False)`) are not.
    """
    return array.flags.owndata or fresh_tensorflow_tensor(array) is not None


def adoptable_torch_tensor(array):
    """A torch tensor on `array`'s own buffer (for `owns_its_memory` arrays): no copy."""
    tensor = fresh_tensorflow_tensor(array)
    if tensor is not None:
        return torch.utils.dlpack.from_dlpack(_tensorflow().experimental.dlpack.to_dlpack(tensor))
    return torch_view(array)


def torch_view(array):
    """`torch.from_numpy(array)`, quietly for a read-only view (which is only read)."""
    with warnings.catch_warnings():
        # torch warns about any read-only array, though reading it is safe.
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(array)


def _as_tensorflow(tf, array):
    """`array` as a TensorFlow tensor, on the same memory where TensorFlow accepts it."""
    if array.flags.c_contiguous and array.ctypes.data % TENSORFLOW_ALIGNMENT == 0:
        return tf.experimental.dlpack.from_dlpack(torch.utils.dlpack.to_dlpack(torch_view(array)))
    return tf.convert_to_tensor(array)
