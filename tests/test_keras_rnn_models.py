"""keras_rnn.models: shapes, errors, and known answers against numpy.

The known answers come from a small numpy implementation of each recurrence
in Keras's weight layout (written from the equations, not from Keras), run
on weights the test itself makes.
"""

import doctest

import keras
import numpy as np
import pytest

from keras_rnn import hello, models

CELLS = hello.CELL_TYPES


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def simple_rnn_step(x, state, kernel, recurrent_kernel, bias):
    (h,) = state
    h = np.tanh(x @ kernel + bias + h @ recurrent_kernel)
    return h, (h,)


def lstm_step(x, state, kernel, recurrent_kernel, bias):
    # Keras packs the gates as (i, f, c, o) along the last axis.
    h, c = state
    i, f, g, o = np.split(x @ kernel + h @ recurrent_kernel + bias, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    return h, (h, c)


def gru_step(x, state, kernel, recurrent_kernel, bias):
    # Keras (reset_after=True) packs (z, r, h); bias rows: input, recurrent.
    (h,) = state
    x_z, x_r, x_h = np.split(x @ kernel + bias[0], 3, axis=-1)
    h_z, h_r, h_h = np.split(h @ recurrent_kernel + bias[1], 3, axis=-1)
    z = sigmoid(x_z + h_z)
    r = sigmoid(x_r + h_r)
    candidate = np.tanh(x_h + r * h_h)
    h = z * h + (1 - z) * candidate
    return h, (h,)


STEPS = {"rnn": simple_rnn_step, "lstm": lstm_step, "gru": gru_step}


def run_recurrence(cell, inputs, weights):
    """numpy: (batch, steps, features) -> (batch, steps, units)."""
    units = weights[1].shape[0]
    state = tuple(np.zeros((inputs.shape[0], units)) for _ in range(2 if cell == "lstm" else 1))
    outputs = []
    for t in range(inputs.shape[1]):
        h, state = STEPS[cell](inputs[:, t], state, *weights)
        outputs.append(h)
    return np.stack(outputs, axis=1)


def pattern(shape, salt):
    """Deterministic, varied values in [-0.5, 0.5]: every gate sees different numbers."""
    n = int(np.prod(shape))
    return ((((np.arange(n) + salt) * 7) % 13) / 12 - 0.5).reshape(shape).astype("float32")


def fill_with_pattern(model):
    """Assigns a pattern to every weight; returns the arrays by variable path."""
    assigned = {}
    for salt, variable in enumerate(model.weights):
        assigned[variable.path] = pattern(tuple(variable.shape), salt)
        variable.assign(assigned[variable.path])
    return assigned


def cell_weights(assigned, keras_cell):
    """The arrays assigned to a cell's kernel, recurrent kernel and bias."""
    variables = (keras_cell.kernel, keras_cell.recurrent_kernel, keras_cell.bias)
    return [assigned[variable.path] for variable in variables]


def arange_inputs(shape):
    return (np.arange(np.prod(shape)).reshape(shape) % 5 / 4 - 0.5).astype("float32")


HELLO_INPUTS = {
    # batch 2 and, for the layer models, a length other than 5.
    "cell": arange_inputs((2, 5, 4)),
    "layer": arange_inputs((2, 7, 4)),
    "embedding": np.array([[1, 0, 2, 2, 3, 0], [3, 3, 1, 0, 2, 1]], dtype="int64"),
}


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("model_kind", hello.HELLO_MODELS)
def test_hello_model_shapes(model_kind, cell):
    model = models.build_hello_model(model_kind, cell)
    x = HELLO_INPUTS[model_kind]
    assert model.predict_on_batch(x).shape == (*x.shape[:2], 4)
    assert model.name == f"{model_kind}_model_{cell}"


@pytest.mark.parametrize("cell", CELLS)
def test_notes_sizes_are_the_defaults(cell):
    cell_model = models.build_cell_model(cell)
    assert cell_model.input_shape == (None, 5, 4) and cell_model.output_shape == (None, 5, 4)
    assert cell_model.get_layer(models.STEP_LOOP_NAME).cell.units == 4
    assert models.build_layer_model(cell).get_layer("recurrent_0").units == 4
    embedding_model = models.build_embedding_model(cell)
    embedding = embedding_model.get_layer(models.EMBEDDING_NAME)
    assert (embedding.input_dim, embedding.output_dim) == (4, 10)
    assert [layer.units for layer in models.recurrent_layers(embedding_model)] == [8, 8]
    assert embedding_model.get_layer(models.LOGITS_NAME).units == 4


@pytest.mark.parametrize("cell", CELLS)
def test_cell_model_known_answer(cell):
    model = models.build_cell_model(cell)
    assigned = fill_with_pattern(model)
    weights = cell_weights(assigned, model.get_layer(models.STEP_LOOP_NAME).cell)
    x = HELLO_INPUTS["cell"]
    np.testing.assert_allclose(
        model.predict_on_batch(x), run_recurrence(cell, x, weights), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("cell", CELLS)
def test_layer_model_known_answer(cell):
    model = models.build_layer_model(cell)
    assigned = fill_with_pattern(model)
    weights = cell_weights(assigned, model.get_layer("recurrent_0").cell)
    x = HELLO_INPUTS["layer"]
    np.testing.assert_allclose(
        model.predict_on_batch(x), run_recurrence(cell, x, weights), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("cell", CELLS)
def test_embedding_model_known_answer(cell):
    model = models.build_embedding_model(cell)
    assigned = fill_with_pattern(model)
    x = HELLO_INPUTS["embedding"]
    hidden = assigned["embedding/embeddings"][x]
    for layer in models.recurrent_layers(model):
        hidden = run_recurrence(cell, hidden, cell_weights(assigned, layer.cell))
    expected = hidden @ assigned["logits/kernel"] + assigned["logits/bias"]
    np.testing.assert_allclose(model.predict_on_batch(x), expected, rtol=0, atol=1e-6)


def test_constant_initialisers_reach_the_cell():
    # With unit_forget_bias=True (the default) Keras's LSTM initialises the
    # forget-gate bias to exactly 1 and the other gates' with
    # bias_initializer (its docstring says "add 1" and "force zeros"; the
    # code in lstm.py's build does neither).
    model = models.build_cell_model(
        "lstm",
        kernel_initializer=keras.initializers.Constant(0.1),
        recurrent_initializer=keras.initializers.Constant(-0.2),
        bias_initializer=keras.initializers.Constant(0.05),
    )
    bias = np.full(16, 0.05)
    bias[4:8] = 1.0  # (i, f, c, o): the f block
    weights = [np.full((4, 16), 0.1), np.full((4, 16), -0.2), bias]
    x = HELLO_INPUTS["cell"]
    np.testing.assert_allclose(
        model.predict_on_batch(x), run_recurrence("lstm", x, weights), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("cell", CELLS)
def test_step_loop_matches_keras_rnn_layer(cell):
    # The hand-written loop of 3.1 and Keras's own time loop over one cell.
    model = models.build_cell_model(cell)
    keras_cell = model.get_layer(models.STEP_LOOP_NAME).cell
    x = HELLO_INPUTS["cell"]
    expected = keras.layers.RNN(keras_cell, return_sequences=True)(x)
    np.testing.assert_allclose(model.predict_on_batch(x), expected, rtol=0, atol=1e-6)


def test_step_loop_needs_a_static_length():
    with pytest.raises(ValueError, match=r"static sequence length. Received: input_shape"):
        models.StepLoop(keras.layers.SimpleRNNCell(2))(keras.Input((None, 4)))


def test_cell_model_survives_saving(tmp_path):
    model = models.build_cell_model("gru")
    fill_with_pattern(model)
    path = tmp_path / "cell_model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    x = HELLO_INPUTS["cell"]
    np.testing.assert_array_equal(restored.predict_on_batch(x), model.predict_on_batch(x))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(
    "builder, out_size, expected",
    [
        (models.build_sequence_classifier, 3, (6, 3)),
        (models.build_sequence_generator, 2, (6, 9, 2)),
        (models.build_sequence_labeller, 5, (6, 9, 5)),
    ],
    ids=["classification", "generation", "labelling"],
)
def test_task_shapes(builder, out_size, expected, cell):
    # Section 1.2: [batch, seq_len, input_size] in.
    x = arange_inputs((6, 9, 7))
    model = builder(7, out_size, hidden_size=16, cell=cell)
    assert model.predict_on_batch(x).shape == expected
    assert models.recurrent_layers(model)[0].units == 16


def test_task_shapes_with_a_fixed_length():
    model = models.build_sequence_labeller(7, 5, seq_len=9)
    assert model.input_shape == (None, 9, 7) and model.output_shape == (None, 9, 5)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: models.build_cell_model("tanh"), "Received: cell='tanh'"),
        (lambda: models.build_layer_model("LSTM"), "Received: cell='LSTM'"),
        (lambda: models.build_embedding_model("transformer"), "Received: cell='transformer'"),
        (lambda: models.build_hello_model("dense"), "Received: model='dense'"),
        (lambda: models.build_cell_model(hidden_size=0), "Received: hidden_size=0"),
        (lambda: models.build_cell_model(seq_len=None), "static sequence length"),
        (lambda: models.build_embedding_model(num_layers=0), "Received: num_layers=0"),
        (lambda: models.build_sequence_classifier(4, 0), "Received: num_classes=0"),
        (lambda: models.build_sequence_generator(4, -1), "Received: output_size=-1"),
        (lambda: models.build_sequence_labeller(4, 2.5), "Received: num_classes=2.5"),
        (lambda: models.recurrent_cell("rnn2", 3), "Received: cell='rnn2'"),
    ],
)
def test_bad_arguments_fail_loudly(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize("module", [models], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0 and result.failed == 0
