"""The notes' "hello" -> "ohlol" task: vocabulary, encoding and model inputs.

Section 3 of the notes trains three small models to map the characters of
"hello" to those of "ohlol", one step at a time, over the four-letter
vocabulary `e h l o`. This module holds that data once, in the two input forms
the models take (one-hot vectors for 3.1/3.2, indices for the embedding of
3.3), batch-major for Keras or time-major for the PyTorch originals.

Example:

>>> x, y = hello_arrays("one_hot")
>>> x.shape, y.shape
((1, 5, 4), (1, 5))
>>> decode(y[0])
'ohlol'
"""

import numpy as np

VOCAB = ("e", "h", "l", "o")
"""The notes' `index2char`: index -> character."""

INPUT_TEXT = "hello"
TARGET_TEXT = "ohlol"

INPUT_FORMS = ("one_hot", "indices")

_CHAR_TO_INDEX = {char: index for index, char in enumerate(VOCAB)}


def encode(text):
    """Maps a string over `VOCAB` to its indices.

    Args:
        text: a string whose characters are all in `VOCAB`.

    Returns:
        An int64 array of shape `(len(text),)`.

    Example:

    >>> encode("hello").tolist()
    [1, 0, 2, 2, 3]
    """
    unknown = sorted({char for char in text if char not in _CHAR_TO_INDEX})
    if unknown:
        raise ValueError(
            f"Characters {unknown} are not in the vocabulary {VOCAB}. "
            f"Received: text={text!r}"
        )
    return np.array([_CHAR_TO_INDEX[char] for char in text], dtype="int64")


def decode(indices):
    """Maps indices back to a string over `VOCAB`.

    Args:
        indices: a 1-D sequence of ints in `[0, len(VOCAB))`.

    Returns:
        The decoded string.

    Example:

    >>> decode([3, 1, 2, 3, 2])
    'ohlol'
    """
    indices = np.asarray(indices)
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(
            "Expected a 1-D sequence of integer indices. "
            f"Received: indices with shape {indices.shape} and dtype "
            f"{indices.dtype}"
        )
    out_of_range = indices[(indices < 0) | (indices >= len(VOCAB))]
    if out_of_range.size:
        raise ValueError(
            f"Indices must lie in [0, {len(VOCAB)}). "
            f"Received: indices={indices.tolist()}"
        )
    return "".join(VOCAB[index] for index in indices)


def decode_logits(logits):
    """Decodes the argmax over the last axis of one sequence of logits.

    Args:
        logits: an array of shape `(seq_len, len(VOCAB))`.

    Returns:
        The predicted string.

    Example:

    >>> decode_logits(np.eye(4)[[3, 1, 2, 3, 2]])
    'ohlol'
    """
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[-1] != len(VOCAB):
        raise ValueError(
            f"Expected logits of shape (seq_len, {len(VOCAB)}). "
            f"Received: logits with shape {logits.shape}"
        )
    return decode(np.argmax(logits, axis=-1))


def one_hot(indices, depth=len(VOCAB)):
    """One-hot encodes indices as float32, the notes' `one_hot_lookup`.

    Args:
        indices: an int array of any shape.
        depth: the number of classes.

    Returns:
        A float32 array of shape `indices.shape + (depth,)`.

    Example:

    >>> one_hot([1, 0]).tolist()
    [[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]
    """
    indices = np.asarray(indices)
    if indices.size and (indices.min() < 0 or indices.max() >= depth):
        raise ValueError(
            f"Indices must lie in [0, {depth}). "
            f"Received: indices={indices.tolist()}"
        )
    return np.eye(depth, dtype="float32")[indices]


def hello_arrays(input_form, time_major=False):
    """The hello task as one batch `(x, y)`, in the form a model takes.

    Args:
        input_form: `"one_hot"` (x is float32 one-hot vectors, the 3.1 and
            3.2 models) or `"indices"` (x is int64 indices, the 3.3 model).
        time_major: `False` (Keras, and PyTorch with `batch_first=True`)
            puts the batch first; `True` (PyTorch's default) puts time first.

    Returns:
        `(x, y)`: x of shape `(1, 5, 4)` or `(1, 5)`, y the int64 target
        indices of shape `(1, 5)`; with `time_major=True` the first two axes
        are swapped.

    Example:

    >>> x, y = hello_arrays("indices", time_major=True)
    >>> x.shape, x[:, 0].tolist()
    ((5, 1), [1, 0, 2, 2, 3])
    """
    if input_form not in INPUT_FORMS:
        raise ValueError(
            f"Unknown input form. Expected one of {INPUT_FORMS}. "
            f"Received: input_form={input_form!r}"
        )
    x = encode(INPUT_TEXT)[None, :]
    y = encode(TARGET_TEXT)[None, :]
    if input_form == "one_hot":
        x = one_hot(x)
    if time_major:
        x = np.ascontiguousarray(np.swapaxes(x, 0, 1))
        y = np.ascontiguousarray(np.swapaxes(y, 0, 1))
    return x, y
