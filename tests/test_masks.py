"""Variable-length sequences: PyTorch PackedSequence <-> Keras masks."""

import itertools

import keras
import numpy as np
import pytest
import torch

import parity
from factories import KINDS, initial_state, keras_stack, randomize_keras, torch_layer

INPUT, HIDDEN, BATCH, TIME = 3, 4, 3, 6
LENGTHS = np.array([6, 2, 4])

# torch -> keras cases pass `lengths=`, keras -> torch cases a Keras `mask=`.
CASES = [(*c, "lengths" if c[-1] == "t2k" else "mask")
         for c in itertools.product(KINDS, (1, 2), (False, True), (False, True), ("t2k", "k2t"))]


def case_id(case):
    kind, layers, bi, bf, direction, how = case
    return f"{kind}-{layers}layer-{'bi' if bi else 'uni'}-{'bf' if bf else 'tm'}-{direction}-{how}"


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_packed_sequence_matches_mask(case, rng):
    kind_id, layers, bi, batch_first, direction, how = case
    kind, activation = KINDS[kind_id]
    if direction == "t2k":
        module = torch_layer(kind, activation, INPUT, HIDDEN, layers, bi, batch_first=batch_first)
        keras_obj = parity.to_keras(module)
    else:
        keras_obj = keras_stack(kind, activation, INPUT, HIDDEN, layers, bi, rng=rng)
        module = torch_layer(kind, activation, INPUT, HIDDEN, layers, bi, batch_first=batch_first)
        parity.copy_weights(keras_obj, module)
    # padded steps hold large garbage: any leak into the result shows
    x = rng.normal(size=(BATCH, TIME, INPUT)) * 5
    if not batch_first:
        x = np.swapaxes(x, 0, 1)
    state = initial_state(kind, rng, layers * (2 if bi else 1), BATCH, HIDDEN, "float32")
    kwargs = ({"lengths": LENGTHS} if how == "lengths"
              else {"mask": np.arange(TIME)[None, :] < LENGTHS[:, None]})
    report = parity.assert_parity(module, keras_obj, x, initial_state=state, **kwargs)
    assert report["outputs"].note == "valid steps only"
    # the lengths matter: the packed final states are not the padded run's
    assert not np.allclose(_torch_h_n(module, x, state, LENGTHS), _torch_h_n(module, x, state, None))


def _torch_h_n(module, x, state, lengths):
    x_t = torch.from_numpy(x.astype("float32"))
    states = tuple(torch.from_numpy(s) for s in (state if isinstance(state, tuple) else (state,)))
    if lengths is not None:
        x_t = torch.nn.utils.rnn.pack_padded_sequence(
            x_t, torch.from_numpy(lengths), batch_first=module.batch_first, enforce_sorted=False)
    with torch.no_grad():
        _, final = module(x_t, states if len(states) > 1 else states[0])
    return (final[0] if isinstance(final, tuple) else final).numpy()


def test_what_padded_positions_hold(rng):
    """PyTorch pads with 0; Keras carries the last valid output, unless
    `zero_output_for_mask=True`; `Bidirectional` zeroes them."""
    module = torch.nn.GRU(INPUT, HIDDEN, batch_first=True)
    x = rng.normal(size=(BATCH, TIME, INPUT)).astype("float32")
    mask = np.arange(TIME)[None, :] < LENGTHS[:, None]
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(x), torch.from_numpy(LENGTHS), batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        out, _ = module(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=TIME)
    out = out.numpy()
    assert np.all(out[1, 2:] == 0)

    carried = parity.to_keras(module)
    k_out = keras.ops.convert_to_numpy(carried(x, mask=mask)[0])
    np.testing.assert_array_equal(k_out[1, 2:], np.repeat(k_out[1, 1:2], TIME - 2, axis=0))

    zeroing = keras.layers.GRU(HIDDEN, return_sequences=True, zero_output_for_mask=True)
    zeroing.build((None, None, INPUT))
    parity.copy_weights(module, zeroing)
    z_out = keras.ops.convert_to_numpy(zeroing(x, mask=mask))
    assert np.all(z_out[1, 2:] == 0)
    np.testing.assert_allclose(z_out, out, atol=1e-6)

    bi = parity.to_keras(torch.nn.GRU(INPUT, HIDDEN, batch_first=True, bidirectional=True))
    b_out = keras.ops.convert_to_numpy(bi(x, mask=mask)[0])
    assert np.all(b_out[1, 2:] == 0)


def test_left_padding_in_keras_equals_right_padding_in_torch(rng):
    """Keras skips masked steps wherever they are: a left-padded, masked batch
    gives the final states of PyTorch's right-padded packed batch."""
    module = torch.nn.LSTM(INPUT, HIDDEN, batch_first=True, bidirectional=True)
    keras_model = parity.to_keras(module)
    x_right = rng.normal(size=(BATCH, TIME, INPUT)).astype("float32")
    x_left = np.zeros_like(x_right)
    left_mask = np.zeros((BATCH, TIME), bool)
    for b, n in enumerate(LENGTHS):
        x_left[b, TIME - n:] = x_right[b, :n]
        left_mask[b, TIME - n:] = True
    outputs, h_n, c_n = [keras.ops.convert_to_numpy(t) for t in keras_model(x_left, mask=left_mask)]
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(x_right), torch.from_numpy(LENGTHS), batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        _, (t_h, t_c) = module(packed)
    np.testing.assert_allclose(h_n, t_h.numpy(), atol=1e-5)
    np.testing.assert_allclose(c_n, t_c.numpy(), atol=1e-5)
    # compare() itself only takes right padding, and says why
    with pytest.raises(parity.ConversionError, match="right-padded.*Received: rows"):
        parity.compare(module, keras_model, x_left, mask=left_mask)


@pytest.mark.parametrize("kwargs,message", [
    ({"lengths": np.array([7, 2, 4])}, r"between 1 and the sequence length 6. Received: lengths=\[7, 2, 4\]"),
    ({"lengths": np.array([0, 2, 4])}, r"Received: lengths=\[0, 2, 4\]"),
    ({"lengths": np.array([6.0, 2, 4])}, r"must be integers.*Received: dtype=float64"),
    ({"lengths": np.array([6, 2])}, r"one per sequence \(3\).*Received: dtype=int64, shape=\(2,\)"),
    ({"mask": np.ones((3, 5), bool)}, r"Received: dtype=bool, shape=\(3, 5\)"),
    ({"lengths": np.array([6, 2, 4]), "mask": np.ones((3, 6), bool)}, "lengths and mask disagree"),
], ids=["too-long", "zero", "float", "wrong-batch", "mask-shape", "disagree"])
def test_bad_lengths(kwargs, message, rng):
    module = torch.nn.GRU(INPUT, HIDDEN, batch_first=True)
    with pytest.raises(parity.ConversionError, match=message):
        parity.compare(module, parity.to_keras(module), rng.normal(size=(BATCH, TIME, INPUT)), **kwargs)


def test_lengths_on_a_cell_are_refused(rng):
    cell = torch.nn.GRUCell(INPUT, HIDDEN)
    with pytest.raises(parity.ConversionError, match="lengths/mask apply to recurrent layers"):
        parity.compare(cell, parity.to_keras(cell), rng.normal(size=(2, INPUT)), lengths=np.array([1, 1]))


# -- whole models whose mask comes from Embedding(mask_zero=True) or Masking --------

PADDED_INDICES = np.array([[1, 2, 3, 4, 0, 0], [2, 2, 1, 0, 0, 0], [4, 3, 2, 1, 1, 1]])


def test_mask_zero_model_converts_and_packs(rng):
    from parity.torch_modules import MaskedSequential

    model = keras.Sequential([
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(5, 3, mask_zero=True),
        keras.layers.LSTM(4, return_sequences=True),
        keras.layers.Bidirectional(keras.layers.GRU(3)),   # final states at the last valid step
        keras.layers.Dense(2),
    ])
    randomize_keras(model, rng)
    torch_model = parity.to_torch(model)
    assert isinstance(torch_model, MaskedSequential) and torch_model.mask_kind == "zero_index"
    parity.assert_parity(torch_model, model, PADDED_INDICES)
    # the mask matters: the same weights without it give other numbers
    unmasked = torch.nn.Sequential(*torch_model)
    with torch.no_grad():
        plain = unmasked(torch.from_numpy(PADDED_INDICES)).numpy()
        packed = torch_model(torch.from_numpy(PADDED_INDICES)).numpy()
    assert not np.allclose(plain[:2], packed[:2]) and np.allclose(plain[2], packed[2], atol=1e-6)
    again = parity.to_keras(torch_model)
    assert again.layers[0].mask_zero
    parity.assert_parity(torch_model, again, PADDED_INDICES)


def test_masking_layer_model_compares_valid_steps(rng):
    model = keras.Sequential([
        keras.Input((None, 3)), keras.layers.Masking(0.0),
        keras.layers.SimpleRNN(4, return_sequences=True), keras.layers.Dense(2),
    ])
    randomize_keras(model, rng)
    x = rng.normal(size=(2, 5, 3))
    x[0, 3:] = 0.0
    torch_model = parity.to_torch(model)
    report = parity.assert_parity(torch_model, model, x)
    assert report["outputs"].note == "valid steps only"
    assert isinstance(parity.to_keras(torch_model).layers[0], keras.layers.Masking)


def test_mask_made_later_in_the_model_is_refused():
    model = keras.Sequential([keras.Input((None, 3)), keras.layers.Dense(3),
                              keras.layers.Masking(0.0), keras.layers.GRU(2)])
    with pytest.raises(parity.ConversionError, match="a mask made after the first layer.*Received: a mask-making layer at position 1"):
        parity.to_torch(model)


def test_left_padded_input_to_a_masked_model_is_refused():
    model = keras.Sequential([keras.Input((None,), dtype="int32"),
                              keras.layers.Embedding(5, 3, mask_zero=True), keras.layers.GRU(2)])
    torch_model = parity.to_torch(model)
    with pytest.raises(ValueError, match=r"right-padded.*Received: a mask with rows \[0\]"):
        torch_model(torch.tensor([[0, 0, 1, 2]]))
