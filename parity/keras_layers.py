"""Keras layers for what PyTorch computes and Keras has no layer for.

`ProjectedLSTM` is PyTorch's `nn.LSTM(proj_size=P)`: an LSTM whose hidden
state is projected to `P` features after every step,

    c_t = f * c_{t-1} + i * act(g)
    h_t = (o * act(c_t)) @ projection_kernel        # (units, proj_units)

so `h` has `proj_units` features and `c` has `units`. The recurrent kernel
acts on the projected state: `(proj_units, 4 * units)`. Gates are Keras's
`i, f, c, o` like `keras.layers.LSTM`. Both classes are registered as
serialisable, so models using them save to and load from `.keras` files
(with `safe_mode=True`).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="parity")
class ProjectedLSTMCell(keras.layers.Layer):
    """One step of a projected LSTM (PyTorch's `proj_size`).

    Args:
        units: cell state size (PyTorch's `hidden_size`).
        proj_units: projected hidden state size (PyTorch's `proj_size`).
        activation, recurrent_activation, use_bias: as for `LSTMCell`.

    Example:

    >>> layer = keras.layers.RNN(ProjectedLSTMCell(8, 3), return_sequences=True)
    >>> layer(np.zeros((2, 5, 4), "float32")).shape
    (2, 5, 3)
    """

    def __init__(self, units, proj_units, activation="tanh", recurrent_activation="sigmoid",
                 use_bias=True, **kwargs):
        super().__init__(**kwargs)
        if not 0 < int(proj_units) < int(units):
            raise ValueError(
                f"proj_units must be between 1 and units - 1 (PyTorch requires "
                f"proj_size < hidden_size). Received: units={units}, proj_units={proj_units}"
            )
        self.units = int(units)
        self.proj_units = int(proj_units)
        self.activation = keras.activations.get(activation)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.state_size = [self.proj_units, self.units]
        self.output_size = self.proj_units

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], 4 * self.units), name="kernel",
            initializer="glorot_uniform",
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.proj_units, 4 * self.units), name="recurrent_kernel",
            initializer="orthogonal",
        )
        self.bias = (
            self.add_weight(shape=(4 * self.units,), name="bias", initializer="zeros")
            if self.use_bias else None
        )
        self.projection_kernel = self.add_weight(
            shape=(self.units, self.proj_units), name="projection_kernel",
            initializer="glorot_uniform",
        )

    def call(self, inputs, states, training=False):
        h_tm1, c_tm1 = states[0], states[1]
        z = ops.matmul(inputs, self.kernel) + ops.matmul(h_tm1, self.recurrent_kernel)
        if self.use_bias:
            z = z + self.bias
        i, f, g, o = ops.split(z, 4, axis=-1)
        i = self.recurrent_activation(i)
        f = self.recurrent_activation(f)
        o = self.recurrent_activation(o)
        c = f * c_tm1 + i * self.activation(g)
        h = ops.matmul(o * self.activation(c), self.projection_kernel)
        return h, [h, c]

    def get_initial_state(self, batch_size=None):
        return [
            ops.zeros((batch_size, self.proj_units), dtype=self.compute_dtype),
            ops.zeros((batch_size, self.units), dtype=self.compute_dtype),
        ]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "proj_units": self.proj_units,
            "activation": keras.activations.serialize(self.activation),
            "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
        }


@keras.saving.register_keras_serializable(package="parity")
class ProjectedLSTM(keras.layers.RNN):
    """`keras.layers.RNN(ProjectedLSTMCell(...))` with `LSTM`-style arguments.

    Returns like `LSTM`: with `return_state=True`, `[outputs, h, c]` where `h`
    is `(batch, proj_units)` and `c` is `(batch, units)`.
    """

    def __init__(self, units, proj_units, activation="tanh", recurrent_activation="sigmoid",
                 use_bias=True, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, **kwargs):
        cell = ProjectedLSTMCell(
            units, proj_units, activation=activation,
            recurrent_activation=recurrent_activation, use_bias=use_bias,
            dtype=kwargs.get("dtype"), name="projected_lstm_cell",
        )
        super().__init__(
            cell, return_sequences=return_sequences, return_state=return_state,
            go_backwards=go_backwards, stateful=stateful, unroll=unroll, **kwargs,
        )

    @property
    def units(self):
        return self.cell.units

    @property
    def proj_units(self):
        return self.cell.proj_units

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        config.update(
            units=self.cell.units,
            proj_units=self.cell.proj_units,
            activation=keras.activations.serialize(self.cell.activation),
            recurrent_activation=keras.activations.serialize(self.cell.recurrent_activation),
            use_bias=self.cell.use_bias,
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
