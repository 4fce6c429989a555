"""`parity.fastcopy`: fast transposes and zero-copy hand-over, bit-exact and never shared.

The rest of the suite mostly converts small layers, below
`fastcopy.MIN_FAST_ELEMENTS`; these tests use matrices above it so that the
TensorFlow transpose, the DLPack import and the buffer hand-over all run.
"""

import gc

import keras
import numpy as np
import pytest
import torch

import parity
from parity import fastcopy

BIG = (256, 128)  # 32768 elements >= MIN_FAST_ELEMENTS


def _bits(array):
    return np.ascontiguousarray(array).view(f"u{array.dtype.itemsize}")


def _special_values(dtype, shape, rng):
    a = rng.normal(size=shape).astype(dtype)
    flat = a.reshape(-1)
    flat[:4] = [-0.0, np.inf, -np.inf, np.nan]
    bits = flat.view(f"u{flat.dtype.itemsize}")
    if dtype == "float32":
        bits[4] = 0x7FA00001  # a signalling NaN with a payload
    elif dtype == "float64":
        bits[4] = 0x7FF4000000000001
    return a


def test_big_enough_for_the_fast_path():
    assert BIG[0] * BIG[1] >= fastcopy.MIN_FAST_ELEMENTS


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("layout", ["aligned", "unaligned", "strided"])
def test_transpose_is_bit_exact(dtype, layout, rng):
    source = _special_values(dtype, BIG, rng)
    if layout == "unaligned":  # a view starting one element in: not 64-byte aligned
        padded = np.empty(source.size + 1, dtype)
        padded[1:] = source.reshape(-1)
        source = padded[1:].reshape(BIG)
        assert source.ctypes.data % fastcopy.TENSORFLOW_ALIGNMENT != 0
    elif layout == "strided":
        wide = np.repeat(source, 2, axis=1)
        source = wide[:, ::2]
        assert not source.flags.c_contiguous
    before = _bits(source).copy()
    result = fastcopy.transpose(source)
    assert result.shape == BIG[::-1] and result.flags.c_contiguous
    np.testing.assert_array_equal(_bits(result), _bits(np.ascontiguousarray(source.T)))
    np.testing.assert_array_equal(_bits(source), before)  # the source is only read
    assert not np.shares_memory(result, source)


def test_tensorflow_results_are_fresh_and_outlive_the_tensor(rng):
    source = rng.normal(size=BIG).astype("float32")
    result = fastcopy.transpose(source)
    assert fastcopy.fresh_tensorflow_tensor(result) is not None  # TensorFlow is loaded
    assert fastcopy.owns_its_memory(result)
    assert not fastcopy.owns_its_memory(source[:])  # a view
    expected = source.T.copy()
    gc.collect()
    _ = [np.ones(BIG, "float32") for _ in range(8)]  # reuse freed memory, if any was
    np.testing.assert_array_equal(result, expected)


def test_small_or_other_arrays_take_numpy(rng):
    small = rng.normal(size=(3, 4)).astype("float32")
    assert fastcopy.fresh_tensorflow_tensor(fastcopy.transpose(small)) is None
    ints = rng.integers(0, 9, size=BIG)
    np.testing.assert_array_equal(fastcopy.transpose(ints), ints.T)


def _big_lstm():
    torch.manual_seed(0)
    return torch.nn.LSTM(128, 128, num_layers=2, bidirectional=True)  # 512 x 128 kernels


def test_to_keras_results_do_not_share_memory_with_the_source():
    module = _big_lstm()
    model = parity.to_keras(module)
    x = np.random.default_rng(0).normal(size=(5, 2, 128)).astype("float32")
    parity.assert_parity(module, model, x)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)  # the source changes ...
    parity.assert_parity(module, parity.to_keras(module), x)
    with torch.no_grad():
        for p in module.parameters():
            p.sub_(1.0)
    parity.assert_parity(module, model, x)  # ... the first conversion did not


def test_updating_a_converted_keras_variable_changes_nothing_else():
    module = _big_lstm()
    model = parity.to_keras(module)
    kernel = model.rnn_layers[0].forward_layer.cell.kernel
    first = np.array(keras.ops.convert_to_numpy(kernel))
    again = parity.to_keras(module)
    kernel.assign_add(np.ones(kernel.shape, "float32"))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(kernel), first + 1)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(again.rnn_layers[0].forward_layer.cell.kernel), first)
    np.testing.assert_array_equal(module.weight_ih_l0.detach().numpy().T, first)


def test_to_torch_parameters_are_their_own_and_outlive_the_keras_model():
    source = _big_lstm()
    model = parity.to_keras(source)
    back = parity.to_torch(model)
    kernel = model.rnn_layers[0].forward_layer.cell.kernel
    assert not np.shares_memory(back.weight_ih_l0.detach().numpy(),
                                np.asarray(keras.ops.convert_to_numpy(kernel)))
    kernel.assign(np.zeros(kernel.shape, "float32"))
    del model, kernel
    gc.collect()
    _ = [np.ones(BIG, "float32") for _ in range(8)]
    for name, p in source.named_parameters():
        if name.startswith("bias_hh"):
            continue  # keras -> torch puts the summed bias into bias_ih
        if name.startswith("bias_ih"):
            expected = p + dict(source.named_parameters())[name.replace("ih", "hh")]
            torch.testing.assert_close(getattr(back, name), expected, rtol=0, atol=1e-6)
        else:
            assert torch.equal(getattr(back, name), p), name
    # the converted module trains: its parameters are ordinary writable tensors
    loss = back(torch.ones(3, 2, 128))[0].sum()
    loss.backward()
    with torch.no_grad():
        for p in back.parameters():
            p.sub_(0.1 * p.grad)


def test_copy_weights_into_an_existing_module_keeps_its_storage():
    model = parity.to_keras(_big_lstm())
    target = torch.nn.LSTM(128, 128, num_layers=2, bidirectional=True, batch_first=True)
    pointers = {n: p.data_ptr() for n, p in target.named_parameters()}
    parity.copy_weights(model, target)
    assert {n: p.data_ptr() for n, p in target.named_parameters()} == pointers


def test_an_array_written_to_two_parameters_is_adopted_once():
    from parity.plan import write_plan

    module = torch.nn.Linear(4, 3)
    shared = np.ones((3,), "float32")
    targets = {"a": module.bias, "b": torch.nn.Parameter(torch.empty(3))}
    write_plan({"a": shared, "b": shared}, targets, adopt=True)
    targets["a"].data.add_(1.0)
    np.testing.assert_array_equal(targets["b"].detach().numpy(), np.ones(3))


def test_a_tensorflow_import_in_progress_is_not_used(monkeypatch, rng):
    """`to_keras` transposes in a second thread while the main thread may be importing
    TensorFlow; a half-imported module must not be used (it has no `transpose` yet)."""
    import sys
    import types

    half = types.ModuleType("tensorflow")
    half.__spec__ = types.SimpleNamespace(_initializing=True)
    monkeypatch.setitem(sys.modules, "tensorflow", half)
    source = rng.normal(size=BIG).astype("float32")
    result = fastcopy.transpose(source)
    np.testing.assert_array_equal(result, source.T)
    assert fastcopy.fresh_tensorflow_tensor(result) is None
