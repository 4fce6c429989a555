"""`parity.serving.compile_inference` computes what the model's own call computes.

Every output (sequences and final states) is compared with
`model(x, training=False)` through the one tolerance helper; no timings here
(benchmarks/ measures them).
"""

import itertools

import keras
import numpy as np
import pytest
import torch

import parity
from factories import skip_unless_float64_exact
from parity.serving import compile_inference, fast_call, is_fast_layer
from parity.tolerance import assert_allclose_named, default_tolerance

def _flat(result):
    if isinstance(result, (list, tuple)):
        return [leaf for item in result for leaf in _flat(item)]
    return [result]


def assert_same_outputs(actual, expected, dtype="float32"):
    actual, expected = _flat(actual), _flat(expected)
    assert len(actual) == len(expected)
    tolerance = default_tolerance(dtype)
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert_allclose_named(f"outputs[{i}]", keras.ops.convert_to_numpy(a),
                              keras.ops.convert_to_numpy(e), **tolerance)


def _randomize(obj, rng):
    for variable in obj.weights:
        variable.assign(rng.normal(scale=0.5, size=variable.shape).astype(variable.dtype))


def _inputs(rng, batch=3, steps=6, features=4, dtype="float32"):
    return rng.normal(size=(batch, steps, features)).astype(dtype)


LAYERS = {
    "rnn-tanh": lambda **kw: keras.layers.SimpleRNN(5, **kw),
    "rnn-relu": lambda **kw: keras.layers.SimpleRNN(5, activation="relu", **kw),
    "lstm": lambda **kw: keras.layers.LSTM(5, **kw),
    "gru": lambda **kw: keras.layers.GRU(5, **kw),
    "gru-reset-before": lambda **kw: keras.layers.GRU(5, reset_after=False, **kw),
    "lstm-hard-sigmoid": lambda **kw: keras.layers.LSTM(5, recurrent_activation="hard_sigmoid",
                                                        **kw),
}


@pytest.mark.parametrize(
    "layer, bias, backwards",
    list(itertools.product(sorted(LAYERS), (True, False), (False, True))),
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_layer_matches_its_call(layer, bias, backwards, rng):
    keras_layer = LAYERS[layer](use_bias=bias, go_backwards=backwards,
                                return_sequences=True, return_state=True)
    x = _inputs(rng)
    keras_layer.build(x.shape)
    _randomize(keras_layer, rng)
    assert is_fast_layer(keras_layer)
    assert_same_outputs(compile_inference(keras_layer)(x), keras_layer(x, training=False))


@pytest.mark.parametrize("sequences, state", list(itertools.product((True, False), repeat=2)))
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_return_options(kind, sequences, state, rng):
    keras_layer = LAYERS[kind](return_sequences=sequences, return_state=state)
    x = _inputs(rng)
    keras_layer(x)  # builds it
    _randomize(keras_layer, rng)
    assert_same_outputs(compile_inference(keras_layer)(x), keras_layer(x))


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul", None])
@pytest.mark.parametrize("sequences", [True, False])
def test_bidirectional_merge_modes(merge_mode, sequences, rng):
    layer = keras.layers.Bidirectional(
        keras.layers.GRU(5, return_sequences=sequences, return_state=True), merge_mode=merge_mode
    )
    x = _inputs(rng)
    layer(x)
    _randomize(layer, rng)
    assert_same_outputs(compile_inference(layer)(x), layer(x))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_initial_state(kind, rng):
    layer = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM,
             "gru": keras.layers.GRU}[kind](5, return_sequences=True, return_state=True)
    x = _inputs(rng)
    layer(x)
    _randomize(layer, rng)
    states = [rng.normal(size=(3, 5)).astype("float32") for _ in range(2 if kind == "lstm" else 1)]
    assert_same_outputs(compile_inference(layer)(x, states), layer(x, initial_state=states))


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True), (3, False)])
def test_to_keras_models(kind, layers, bidirectional, rng):
    module = getattr(torch.nn, kind)(4, 5, num_layers=layers, bidirectional=bidirectional)
    model = parity.to_keras(module)
    x = _inputs(rng)
    assert_same_outputs(compile_inference(model)(x), model(x, training=False))
    slots = layers * (2 if bidirectional else 1)
    states = [rng.normal(size=(slots, 3, 5)).astype("float32")
              for _ in range(2 if kind == "LSTM" else 1)]
    initial = states if kind == "LSTM" or layers * (2 if bidirectional else 1) > 1 else states[0]
    if isinstance(model, parity.TorchRNN):
        expected = model(x, initial_state=initial, training=False)
    else:  # one Keras layer takes (batch, hidden) states
        initial = [s[0] for s in states]
        expected = model(x, initial_state=initial)
    assert_same_outputs(compile_inference(model)(x, initial), expected)


def test_fast_path_matches_pytorch(rng):
    module = torch.nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True)
    x = _inputs(rng, steps=12)
    outputs, h_n, c_n = compile_inference(parity.to_keras(module))(x)
    with torch.no_grad():
        expected, (t_h, t_c) = module(torch.from_numpy(x))
    assert_same_outputs([outputs, h_n, c_n], [expected.numpy(), t_h.numpy(), t_c.numpy()])


def test_notes_embedding_model(rng):
    from keras_rnn import models, torch_twins

    twin = torch_twins.build_twin("embedding", "gru")
    model = models.build_embedding_model("gru")
    parity.copy_weights(twin, model)
    x = rng.integers(0, 4, size=(2, 7))
    run = compile_inference(model)
    assert_same_outputs(run(x), model(x, training=False))
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy().reshape(2, 7, 4)
    assert_same_outputs(run(x), expected)


def test_sequential_with_dropout_and_dense(rng):
    model = keras.Sequential([
        keras.Input((None, 4)),
        keras.layers.LSTM(5, return_sequences=True),
        keras.layers.Dropout(0.5),
        keras.layers.Bidirectional(keras.layers.SimpleRNN(3, return_sequences=True)),
        keras.layers.Dense(2, activation="relu"),
    ])
    _randomize(model, rng)
    x = _inputs(rng)
    assert_same_outputs(compile_inference(model)(x), model(x, training=False))


def test_masked_inputs_run_through_the_layers_own_call(rng):
    inputs = keras.Input((None,), dtype="int64")
    x = keras.layers.Embedding(5, 4, mask_zero=True)(inputs)
    x = keras.layers.GRU(5, return_sequences=True)(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    _randomize(model, rng)
    indices = np.array([[1, 2, 3, 0, 0], [4, 1, 0, 0, 0]])
    assert_same_outputs(compile_inference(model)(indices), model(indices, training=False))


def test_lengths_and_unroll_choices_agree(rng):
    layer = keras.layers.LSTM(5, return_sequences=True, return_state=True)
    layer.build((None, None, 4))
    _randomize(layer, rng)
    for unroll in ("auto", True, False):
        run = compile_inference(layer, unroll=unroll, jit_compile=False)
        for steps in (1, 30, 7):  # another length after the first: a new trace
            x = _inputs(rng, steps=steps)
            assert_same_outputs(run(x), layer(x))
    with pytest.raises(ValueError, match="unroll"):
        compile_inference(layer, unroll="sometimes")


def test_reads_the_current_weights(rng):
    layer = keras.layers.GRU(5, return_sequences=True)
    x = _inputs(rng)
    layer(x)
    run = compile_inference(layer)
    run(x)
    _randomize(layer, rng)
    assert_same_outputs(run(x), layer(x))


def test_float64(rng):
    skip_unless_float64_exact("float64")
    module = torch.nn.GRU(4, 5, num_layers=2, bidirectional=True, batch_first=True).double()
    model = parity.to_keras(module)
    x = _inputs(rng, dtype="float64")
    result = compile_inference(model)(x)
    assert keras.backend.standardize_dtype(result[0].dtype) == "float64"
    assert_same_outputs(result, model(x), dtype="float64")


def test_fast_call_inside_a_compiled_function(rng):
    layer = keras.layers.SimpleRNN(5, return_sequences=True)
    x = _inputs(rng)
    layer(x)
    assert_same_outputs(fast_call(layer, x), layer(x))


def test_unbuilt_model_is_refused():
    with pytest.raises(ValueError, match="built"):
        compile_inference(keras.layers.LSTM(5))


def test_compile_inference_is_exported_at_the_top_level():
    assert parity.compile_inference is compile_inference
    assert "compile_inference" in parity.__all__
