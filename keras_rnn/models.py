"""Keras builders for the models of the notes, one recurrent cell type apart.

Every builder takes `cell`, one of `"rnn"` (`SimpleRNN`), `"lstm"` or
`"gru"`, and defaults to the sizes of the notes:

- `build_cell_model` (3.1): a cell run over the time steps by a Python loop,
  its hidden state being the logits.
- `build_layer_model` (3.2): one recurrent layer of 4 units on one-hot input,
  its outputs being the logits.
- `build_embedding_model` (3.3): `Embedding(4, 10)`, two stacked recurrent
  layers of 8 units, `Dense(4)`.
- `build_sequence_classifier`, `build_sequence_generator`,
  `build_sequence_labeller`: the three task shapes of section 1.2.

All models are batch-major, as Keras always is: `(batch, seq_len, features)`.

Example:

>>> model = build_layer_model("gru")
>>> model.output_shape
(None, None, 4)
"""

import keras
from keras import ops

from keras_rnn import hello
from keras_rnn.hello import CELL_TYPES, check_cell_type  # noqa: F401 (re-exported)

_KERAS_CELLS = {
    "rnn": keras.layers.SimpleRNNCell,
    "lstm": keras.layers.LSTMCell,
    "gru": keras.layers.GRUCell,
}
_KERAS_LAYERS = {
    "rnn": keras.layers.SimpleRNN,
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
}

# Layer names the weight copiers and tests look up.
STEP_LOOP_NAME = "step_loop"
EMBEDDING_NAME = "embedding"
LOGITS_NAME = "logits"


def recurrent_layer_name(index):
    """Name of the `index`-th (0-based) recurrent layer of a built model."""
    return f"recurrent_{index}"


def recurrent_cell(cell, units, **cell_kwargs):
    """A Keras cell by type: `SimpleRNNCell`, `LSTMCell` or `GRUCell`.

    Example:

    >>> cell = recurrent_cell("gru", 2)
    >>> type(cell).__name__, cell.units
    ('GRUCell', 2)
    """
    return _KERAS_CELLS[check_cell_type(cell)](units, **cell_kwargs)


def recurrent_layer(cell, units, **layer_kwargs):
    """A Keras recurrent layer by type: `SimpleRNN`, `LSTM` or `GRU`.

    Example:

    >>> import numpy as np
    >>> output, h, c = recurrent_layer("lstm", 2, return_state=True)(np.zeros((1, 3, 4)))
    >>> tuple(output.shape), tuple(c.shape)
    ((1, 2), (1, 2))
    """
    return _KERAS_LAYERS[check_cell_type(cell)](units, **layer_kwargs)


def _check_positive(**sizes):
    for name, value in sizes.items():
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(
                f"`{name}` must be a positive integer. Received: {name}={value!r}"
            )


@keras.saving.register_keras_serializable(package="keras_rnn")
class StepLoop(keras.layers.Layer):
    """Runs a recurrent cell over the time axis with an explicit Python loop.

    This is the notes' 3.1 training loop (`for input in inputs: hidden =
    cell(input, hidden)`) as a layer: the state starts at zeros and the
    cell's output at every step is collected. Unlike `keras.layers.RNN`, the
    loop is unrolled at trace time, so the sequence length must be static.

    Args:
        cell: a built or unbuilt Keras RNN cell (`SimpleRNNCell`, `LSTMCell`,
            `GRUCell`, or any cell with `get_initial_state` and `output_size`).
        **kwargs: base `Layer` arguments such as `name`.

    Input shape: `(batch, seq_len, features)` with a known `seq_len`.
    Output shape: `(batch, seq_len, cell.output_size)`.

    Example:

    >>> import numpy as np
    >>> loop = StepLoop(keras.layers.SimpleRNNCell(2))
    >>> tuple(loop(np.zeros((1, 3, 4), "float32")).shape)
    (1, 3, 2)
    """

    def __init__(self, cell, **kwargs):
        super().__init__(**kwargs)
        self.cell = cell

    def build(self, input_shape):
        if input_shape[1] is None:
            raise ValueError(
                "StepLoop unrolls a Python loop over time and needs a static "
                f"sequence length. Received: input_shape={input_shape}"
            )
        if not self.cell.built:
            self.cell.build((input_shape[0], input_shape[-1]))

    def call(self, inputs, training=False):
        states = self.cell.get_initial_state(batch_size=ops.shape(inputs)[0])
        outputs = []
        for step in range(inputs.shape[1]):
            output, states = self.cell(inputs[:, step, :], states, training=training)
            outputs.append(output)
        return ops.stack(outputs, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.cell.output_size)

    def get_config(self):
        config = super().get_config()
        config["cell"] = keras.saving.serialize_keras_object(self.cell)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(config["cell"])
        return cls(**config)


def build_cell_model(cell="rnn", input_size=4, hidden_size=4, seq_len=5, **cell_kwargs):
    """The notes' 3.1 model: one cell stepped over time, hidden state = logits.

    Args:
        cell: `"rnn"`, `"lstm"` or `"gru"`.
        input_size: features per step (4: one-hot over `e h l o`).
        hidden_size: units of the cell; also the number of classes, since the
            hidden state is read as the logits.
        seq_len: the (static) number of steps the loop unrolls.
        **cell_kwargs: passed to the Keras cell, e.g. `kernel_initializer`.

    Returns:
        A `keras.Model` mapping `(batch, seq_len, input_size)` to logits
        `(batch, seq_len, hidden_size)`; its cell is
        `model.get_layer(STEP_LOOP_NAME).cell`.

    Example:

    >>> build_cell_model("lstm").output_shape
    (None, 5, 4)
    """
    _check_positive(input_size=input_size, hidden_size=hidden_size, seq_len=seq_len)
    keras_cell = recurrent_cell(cell, hidden_size, **cell_kwargs)
    inputs = keras.Input((seq_len, input_size), name="one_hot")
    logits = StepLoop(keras_cell, name=STEP_LOOP_NAME)(inputs)
    return keras.Model(inputs, logits, name=f"cell_model_{cell}")


def _indexed_layer(cell, units, index, return_sequences=True, **layer_kwargs):
    return recurrent_layer(
        cell,
        units,
        return_sequences=return_sequences,
        name=recurrent_layer_name(index),
        **layer_kwargs,
    )


def build_layer_model(cell="rnn", input_size=4, hidden_size=4, seq_len=None, **layer_kwargs):
    """The notes' 3.2 model: one recurrent layer whose outputs are the logits.

    Args:
        cell: `"rnn"`, `"lstm"` or `"gru"`.
        input_size: features per step (4: one-hot over `e h l o`).
        hidden_size: units, also the number of classes.
        seq_len: the number of steps, or `None` for any length.
        **layer_kwargs: passed to the Keras recurrent layer.

    Returns:
        A `keras.Model` mapping `(batch, seq_len, input_size)` to logits
        `(batch, seq_len, hidden_size)`; its layer is named
        `recurrent_layer_name(0)`.

    Example:

    >>> build_layer_model("rnn", seq_len=5).output_shape
    (None, 5, 4)
    """
    _check_positive(input_size=input_size, hidden_size=hidden_size, seq_len=seq_len)
    inputs = keras.Input((seq_len, input_size), name="one_hot")
    logits = _indexed_layer(cell, hidden_size, 0, **layer_kwargs)(inputs)
    return keras.Model(inputs, logits, name=f"layer_model_{cell}")


def build_embedding_model(
    cell="rnn",
    num_classes=4,
    embedding_size=10,
    hidden_size=8,
    num_layers=2,
    seq_len=None,
    **layer_kwargs,
):
    """The notes' 3.3 model: embedding, stacked recurrent layers, dense logits.

    Args:
        cell: `"rnn"`, `"lstm"` or `"gru"`.
        num_classes: vocabulary size, for both the embedding and the logits.
        embedding_size: width of the embedding vectors.
        hidden_size: units of every recurrent layer.
        num_layers: how many recurrent layers are stacked.
        seq_len: the number of steps, or `None` for any length.
        **layer_kwargs: passed to every Keras recurrent layer.

    Returns:
        A `keras.Model` mapping int indices `(batch, seq_len)` to logits
        `(batch, seq_len, num_classes)`. Its layers are named
        `EMBEDDING_NAME`, `recurrent_layer_name(k)` for each k, `LOGITS_NAME`.

    Example:

    >>> build_embedding_model("gru").output_shape
    (None, None, 4)
    """
    _check_positive(
        num_classes=num_classes,
        embedding_size=embedding_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        seq_len=seq_len,
    )
    check_cell_type(cell)
    inputs = keras.Input((seq_len,), dtype="int64", name="indices")
    x = keras.layers.Embedding(num_classes, embedding_size, name=EMBEDDING_NAME)(inputs)
    for index in range(num_layers):
        x = _indexed_layer(cell, hidden_size, index, **layer_kwargs)(x)
    logits = keras.layers.Dense(num_classes, name=LOGITS_NAME)(x)
    return keras.Model(inputs, logits, name=f"embedding_model_{cell}")


_HELLO_BUILDERS = {
    "cell": build_cell_model,
    "layer": build_layer_model,
    "embedding": build_embedding_model,
}


def build_hello_model(model, cell="rnn", **kwargs):
    """Builds one of the notes' hello models by its short name.

    Args:
        model: `"cell"` (3.1), `"layer"` (3.2) or `"embedding"` (3.3).
        cell: `"rnn"`, `"lstm"` or `"gru"`.
        **kwargs: passed to the builder.

    Example:

    >>> build_hello_model("embedding", "lstm").name
    'embedding_model_lstm'
    """
    return _HELLO_BUILDERS[hello.check_hello_model(model)](cell, **kwargs)


def recurrent_layers(model):
    """The recurrent layers of a model built here, bottom first.

    Example:

    >>> [layer.name for layer in recurrent_layers(build_embedding_model())]
    ['recurrent_0', 'recurrent_1']
    """
    return [layer for layer in model.layers if isinstance(layer, keras.layers.RNN)]


def _task_model(name, input_size, hidden_size, cell, seq_len, return_sequences, **out_size):
    # `out_size` is one keyword (`num_classes` or `output_size`), so that a bad
    # value is reported under the name the caller used.
    _check_positive(input_size=input_size, hidden_size=hidden_size, seq_len=seq_len, **out_size)
    (out_units,) = out_size.values()
    inputs = keras.Input((seq_len, input_size), name="features")
    x = _indexed_layer(cell, hidden_size, 0, return_sequences=return_sequences)(inputs)
    outputs = keras.layers.Dense(out_units, name=LOGITS_NAME)(x)
    return keras.Model(inputs, outputs, name=f"{name}_{cell}")


def build_sequence_classifier(input_size, num_classes, hidden_size=32, cell="rnn", seq_len=None):
    """Section 1.2, sequence classification: one label per sequence.

    The last hidden state goes through a `Dense` layer to class logits.

    Args:
        input_size: features per step.
        num_classes: number of classes.
        hidden_size: units of the recurrent layer.
        cell: `"rnn"`, `"lstm"` or `"gru"`.
        seq_len: the number of steps, or `None` for any length.

    Returns:
        A model `(batch, seq_len, input_size)` -> `(batch, num_classes)`.

    Example:

    >>> build_sequence_classifier(6, 3).output_shape
    (None, 3)
    """
    return _task_model(
        "sequence_classifier", input_size, hidden_size, cell, seq_len,
        return_sequences=False, num_classes=num_classes,
    )


def build_sequence_generator(input_size, output_size, hidden_size=32, cell="rnn", seq_len=None):
    """Section 1.2, sequence generation: one output vector per step.

    Args:
        input_size: features per step.
        output_size: features of each generated step (linear outputs).
        hidden_size: units of the recurrent layer.
        cell: `"rnn"`, `"lstm"` or `"gru"`.
        seq_len: the number of steps, or `None` for any length.

    Returns:
        A model `(batch, seq_len, input_size)` -> `(batch, seq_len, output_size)`.

    Example:

    >>> build_sequence_generator(6, 2, seq_len=7).output_shape
    (None, 7, 2)
    """
    return _task_model(
        "sequence_generator", input_size, hidden_size, cell, seq_len,
        return_sequences=True, output_size=output_size,
    )


def build_sequence_labeller(input_size, num_classes, hidden_size=32, cell="rnn", seq_len=None):
    """Section 1.2, sequence labelling: class logits for every step.

    Args:
        input_size: features per step.
        num_classes: number of labels.
        hidden_size: units of the recurrent layer.
        cell: `"rnn"`, `"lstm"` or `"gru"`.
        seq_len: the number of steps, or `None` for any length.

    Returns:
        A model `(batch, seq_len, input_size)` -> `(batch, seq_len, num_classes)`.

    Example:

    >>> build_sequence_labeller(6, 5).output_shape
    (None, None, 5)
    """
    return _task_model(
        "sequence_labeller", input_size, hidden_size, cell, seq_len,
        return_sequences=True, num_classes=num_classes,
    )
