"""keras_rnn.optimizers: TorchAdam against torch.optim.Adam itself."""

import doctest

import keras
import numpy as np
import pytest
import torch
from keras import ops

from keras_rnn import models, optimizers

STEPS = 12


def gradient_sequence(shape, seed=0):
    """Gradients of very different sizes: large, tiny (where epsilon matters), sign flips."""
    rng = np.random.default_rng(seed)
    scales = np.logspace(0, -7, STEPS)
    return [(rng.standard_normal(shape) * scale).astype("float32") for scale in scales]


def torch_adam_trajectory(initial, gradients, lr, copies=1):
    """Parameter values after each torch.optim.Adam step (summed over `copies`
    parameters that all receive the same gradient, like b_ih and b_hh)."""
    params = [torch.nn.Parameter(torch.tensor(initial / copies)) for _ in range(copies)]
    optimizer = torch.optim.Adam(params, lr=lr)
    values = []
    for gradient in gradients:
        for param in params:
            param.grad = torch.tensor(gradient)
        optimizer.step()
        values.append(sum(param.detach().numpy() for param in params))
    return values


def keras_trajectory(optimizer, initial, gradients, name="w"):
    variable = keras.Variable(initial, name=name)
    values = []
    for gradient in gradients:
        optimizer.apply([ops.convert_to_tensor(gradient)], [variable])
        values.append(ops.convert_to_numpy(variable).copy())
    return values


def test_torch_adam_follows_torch_optim_adam_step_by_step():
    initial = np.linspace(-1, 1, 12, dtype="float32").reshape(3, 4)
    gradients = gradient_sequence((3, 4))
    expected = torch_adam_trajectory(initial, gradients, lr=0.05)
    actual = keras_trajectory(optimizers.TorchAdam(learning_rate=0.05), initial, gradients)
    for step, (a, e) in enumerate(zip(actual, expected), start=1):
        # float32 rounding of a dozen steps of size <= lr.
        np.testing.assert_allclose(a, e, rtol=0, atol=1e-6, err_msg=f"step {step}")


def test_keras_adam_does_not_follow_torch_optim_adam():
    # Why TorchAdam exists: for gradients of about 1e-6, PyTorch's step is
    # nearly lr * sign(g), while Keras's epsilon (1e-7 on the uncorrected
    # sqrt(v), i.e. 3e-6 on PyTorch's scale at step 1) shrinks it to ~lr / 4.
    initial = np.zeros((3, 4), "float32")
    gradients = [g * 1e-6 / np.abs(g) for g in gradient_sequence((3, 4))]
    expected = torch_adam_trajectory(initial, gradients, lr=0.05)
    actual = keras_trajectory(keras.optimizers.Adam(learning_rate=0.05), initial, gradients)
    assert np.abs(actual[0] - expected[0]).min() > 0.5 * 0.05
    torch_style = keras_trajectory(optimizers.TorchAdam(learning_rate=0.05), initial, gradients)
    np.testing.assert_allclose(torch_style[-1], expected[-1], rtol=0, atol=1e-6)


def test_step_multiplier_two_follows_both_torch_biases():
    # PyTorch's b_ih and b_hh get the same gradient; Keras holds their sum.
    initial = np.linspace(-0.5, 0.5, 8, dtype="float32")
    gradients = gradient_sequence((8,), seed=1)
    expected = torch_adam_trajectory(initial, gradients, lr=0.1, copies=2)
    optimizer = optimizers.TorchAdam(learning_rate=0.1, step_multipliers={"bias": 2.0})
    actual = keras_trajectory(optimizer, initial, gradients, name="bias")
    for step, (a, e) in enumerate(zip(actual, expected), start=1):
        np.testing.assert_allclose(a, e, rtol=0, atol=2e-6, err_msg=f"step {step}")
    # Without the multiplier the sum moves half as far.
    single = keras_trajectory(optimizers.TorchAdam(learning_rate=0.1), initial, gradients)
    assert np.abs(single[-1] - expected[-1]).max() > 0.1


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.IndexedSlices")
def test_sparse_gradient_with_repeated_rows_is_summed_first():
    # An embedding looked up twice for one row ("l" in "hello") gets a
    # tf.IndexedSlices gradient with that row twice.
    import tensorflow as tf

    slices = tf.IndexedSlices(
        tf.constant([[1.0, -2.0], [1.0, 3.0]]), tf.constant([1, 1]), tf.constant([3, 2])
    )
    dense = np.zeros((3, 2), "float32")
    dense[1] = [2.0, 1.0]
    initial = np.zeros((3, 2), "float32")
    expected = torch_adam_trajectory(initial, [dense] * 3, lr=0.1)[-1]
    variable = keras.Variable(initial)
    optimizer = optimizers.TorchAdam(learning_rate=0.1)
    for _ in range(3):
        optimizer.apply([slices], [variable])
    np.testing.assert_allclose(ops.convert_to_numpy(variable), expected, rtol=0, atol=1e-6)


def test_unknown_step_multiplier_path_fails_at_build():
    optimizer = optimizers.TorchAdam(step_multipliers={"dense/bias": 2.0})
    with pytest.raises(ValueError, match=r"not being optimised: \['dense/bias'\].*Received:"):
        optimizer.build([keras.Variable(np.zeros(3, "float32"), name="w")])


@pytest.mark.parametrize("factor", [0, -1.0, "2"])
def test_step_multipliers_must_be_positive_numbers(factor):
    with pytest.raises(ValueError, match="Received: step_multipliers="):
        optimizers.TorchAdam(step_multipliers={"w": factor})


def test_config_round_trip():
    optimizer = optimizers.TorchAdam(
        learning_rate=0.05, beta_2=0.99, epsilon=1e-6, step_multipliers={"a/bias": 2.0}
    )
    restored = optimizers.TorchAdam.from_config(optimizer.get_config())
    assert restored.get_config() == optimizer.get_config()
    assert restored.step_multipliers == {"a/bias": 2.0}


def _bias_of(layer):
    return layer.cell.bias


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: keras.layers.SimpleRNN(3), lambda m: [_bias_of(m.layers[-1])]),
        (lambda: keras.layers.LSTM(3), lambda m: [_bias_of(m.layers[-1])]),
        (lambda: keras.layers.GRU(3), lambda m: []),
        (lambda: keras.layers.SimpleRNN(3, use_bias=False), lambda m: []),
        (
            lambda: keras.layers.Bidirectional(keras.layers.LSTM(3)),
            lambda m: [_bias_of(m.layers[-1].forward_layer), _bias_of(m.layers[-1].backward_layer)],
        ),
        (
            lambda: models.StepLoop(keras.layers.LSTMCell(3)),
            lambda m: [m.layers[-1].cell.bias],
        ),
    ],
    ids=["simple_rnn", "lstm", "gru", "no_bias", "bidirectional_lstm", "step_loop_lstm"],
)
def test_summed_bias_variables(make, expected):
    model = keras.Sequential([keras.Input((5, 4)), make()])
    found = optimizers.summed_bias_variables(model)
    assert sorted(v.path for v in found) == sorted(v.path for v in expected(model))


@pytest.mark.parametrize("cell, doubled", [("rnn", True), ("lstm", True), ("gru", False)])
def test_summed_bias_multipliers_of_the_stacked_model(cell, doubled):
    model = models.build_embedding_model(cell)
    biases = [layer.cell.bias.path for layer in models.recurrent_layers(model)]
    expected = {path: 2.0 for path in biases} if doubled else {}
    assert optimizers.summed_bias_multipliers(model) == expected
    assert optimizers.torch_style_adam(model, 0.05).step_multipliers == expected


def test_summed_bias_variables_needs_a_built_model():
    model = keras.Sequential([keras.layers.SimpleRNN(3)])
    with pytest.raises(ValueError, match="must be built.*Received: model="):
        optimizers.summed_bias_variables(model)


@pytest.mark.parametrize("module", [optimizers], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0 and result.failed == 0
