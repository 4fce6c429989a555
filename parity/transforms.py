"""Pure numpy transforms between PyTorch and Keras weight layouts.

Every function here takes and returns numpy arrays and knows nothing about
layers or names: the family modules (`simple_rnn.py`, `lstm.py`, `gru.py`,
...) say which transform applies to which weight.

Gate orders are data. PyTorch packs the gates of `weight_ih` as rows
`(W_ii|W_if|W_ig|W_io)` for LSTM and `(W_ir|W_iz|W_in)` for GRU; Keras packs
the columns of `kernel` as `(i|f|c|o)` for LSTM and `(z|r|h)` for GRU. The
letters differ but name the same gates, see `GATE_MEANING`.
"""

import numpy as np

from parity import fastcopy

TORCH_GATES = {"rnn": "h", "lstm": "ifgo", "gru": "rzn"}
KERAS_GATES = {"rnn": "h", "lstm": "ifco", "gru": "zrh"}

# What each letter means, so that the permutation is derived, not hand-written.
GATE_MEANING = {
    "i": "input",
    "f": "forget",
    "g": "cell candidate",
    "c": "cell candidate",
    "o": "output",
    "r": "reset",
    "z": "update",
    "n": "new",
    "h": "new",
}


def gate_permutation(src_order, dst_order):
    """Indices `p` such that `dst_gates = src_gates[p]`.

    Example:
        >>> gate_permutation(TORCH_GATES["gru"], KERAS_GATES["gru"])
        [1, 0, 2]
    """
    src_meaning = [GATE_MEANING[g] for g in src_order]
    dst_meaning = [GATE_MEANING[g] for g in dst_order]
    if sorted(src_meaning) != sorted(dst_meaning):
        raise ValueError(
            f"Gate orders {src_order!r} and {dst_order!r} name different gates. "
            f"Received: {src_meaning} vs {dst_meaning}"
        )
    return [src_meaning.index(m) for m in dst_meaning]


def reorder_gates(array, src_order, dst_order, axis=0):
    """Reorders the gate blocks of `array` along `axis` from `src_order` to `dst_order`."""
    perm = gate_permutation(src_order, dst_order)
    if perm == list(range(len(perm))):
        return array
    blocks = np.split(array, len(src_order), axis=axis)
    return np.concatenate([blocks[i] for i in perm], axis=axis)


def to_keras_gates(kind, array):
    """Gate blocks along axis 0, PyTorch order -> Keras order, for `kind`."""
    return reorder_gates(array, TORCH_GATES[kind], KERAS_GATES[kind], axis=0)


def to_torch_gates(kind, array):
    """Gate blocks along axis 0, Keras order -> PyTorch order, for `kind`."""
    return reorder_gates(array, KERAS_GATES[kind], TORCH_GATES[kind], axis=0)


def transpose(array):
    """PyTorch `(out, in)` <-> Keras `(in, out)`, at memory speed (`parity.fastcopy`)."""
    return fastcopy.transpose(array)


def sum_biases(bias_ih, bias_hh):
    """PyTorch's two biases -> the one Keras bias (LSTM, SimpleRNN).

    Where `bias_hh` is zero (always, after `split_bias`) `bias_ih` is taken as
    it is: `x + 0.0` turns `-0.0` into `0.0` and quiets a signalling NaN, and
    keras -> torch -> keras must give back every bit.
    """
    with np.errstate(invalid="ignore"):  # inf + -inf is NaN on both sides, no warning
        return np.where(bias_hh == 0, bias_ih, bias_ih + bias_hh)


def split_bias(bias):
    """The one Keras bias -> `(bias_ih, bias_hh)`: all of it in `bias_ih`, zeros in `bias_hh`.

    Any split with the same sum computes the same outputs; this one makes
    keras -> torch -> keras give back the Keras bias bit for bit.
    """
    return bias.copy(), np.zeros_like(bias)


def stack_biases(bias_ih, bias_hh):
    """PyTorch's two biases -> the Keras GRU `reset_after=True` bias `(2, 3*units)`.

    Row 0 is the input bias, row 1 the recurrent bias (Keras `gru.py`).
    """
    return np.stack([bias_ih, bias_hh], axis=0)


def unstack_biases(bias):
    """The Keras GRU bias `(2, 3*units)` -> `(bias_ih, bias_hh)`."""
    return bias[0].copy(), bias[1].copy()
