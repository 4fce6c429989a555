"""`TorchRNN`: a multi-layer and/or bidirectional PyTorch RNN as a Keras model.

It is an ordinary `keras.Model` made of the standard layers (`SimpleRNN`,
`LSTM`, `GRU`, `Bidirectional`, `Dropout`), so its weights keep the Keras
layout and it saves to `.keras` files. What it adds is PyTorch's interface:
the final states come back stacked as `(num_layers * num_directions, batch,
hidden)`, layer-major and forward before backward, and initial states are
taken in that same layout.
"""

import keras

from parity.recurrent import keras_layer_class, run_stack_layers
from parity.registry import RECURRENT


@keras.saving.register_keras_serializable(package="parity")
class TorchRNN(keras.Model):
    """Stacked / bidirectional recurrent layers with PyTorch's state layout.

    Args:
        kind: `"rnn"`, `"lstm"` or `"gru"`.
        input_size: features of the input.
        hidden_size: units of every layer.
        num_layers: stacked layers.
        bidirectional: wrap every layer in `Bidirectional(merge_mode="concat")`.
        use_bias: PyTorch's `bias`.
        activation: the SimpleRNN nonlinearity / LSTM and GRU cell activation.
        recurrent_activation: LSTM and GRU gate activation.
        reset_after: GRU variant.
        dropout: rate of the `Dropout` between stacked layers (training only).
        return_state: `False` returns the output sequence alone, so the model
            can sit inside a `keras.Sequential`.

    Call arguments:
        inputs: `(batch, time, input_size)`, batch-major like every Keras RNN.
        initial_state: `None`, `h0`, or for LSTM `[h0, c0]`, each
            `(num_layers * num_directions, batch, hidden_size)`.
        mask: optional boolean `(batch, time)`; masked steps are skipped (the
            Keras counterpart of PyTorch's `PackedSequence`). Passed on
            automatically after `Embedding(mask_zero=True)` or `Masking`.

    Returns:
        `[outputs, h_n]` (LSTM: `[outputs, h_n, c_n]`); `outputs` is
        `(batch, time, num_directions * hidden_size)`. With
        `return_state=False`, `outputs` alone.

    Example:

    >>> model = TorchRNN("lstm", input_size=3, hidden_size=5, num_layers=2)
    >>> outputs, h_n, c_n = model(np.zeros((4, 7, 3), "float32"))
    >>> tuple(h_n.shape)
    (2, 4, 5)
    """

    def __init__(
        self,
        kind,
        input_size,
        hidden_size,
        num_layers=1,
        bidirectional=False,
        use_bias=True,
        activation="tanh",
        dropout=0.0,
        return_state=True,
        recurrent_activation="sigmoid",
        reset_after=True,
        proj_size=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.supports_masking = True
        if kind not in RECURRENT:
            raise ValueError(
                f"kind must be one of {sorted(RECURRENT)}. Received: kind={kind!r}"
            )
        self.kind = kind
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bidirectional = bool(bidirectional)
        self.use_bias = bool(use_bias)
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.reset_after = bool(reset_after)
        self.proj_size = int(proj_size)
        self.dropout = float(dropout)
        self.return_state = bool(return_state)
        family = RECURRENT[kind]
        self.family = family  # read by keras_layer_class(self)
        layer_kwargs = dict(
            use_bias=self.use_bias,
            return_sequences=True,
            return_state=True,
            dtype=self.dtype_policy,
            **family.keras_kwargs(self),
        )
        self.rnn_layers = []
        self.dropout_layers = []
        layer_class = keras_layer_class(self)
        for layer in range(self.num_layers):
            rnn = layer_class(
                self.hidden_size, name=f"{kind}_l{layer}", **layer_kwargs
            )
            if self.bidirectional:
                rnn = keras.layers.Bidirectional(
                    rnn, merge_mode="concat", name=f"bidirectional_l{layer}",
                    dtype=self.dtype_policy,
                )
            self.rnn_layers.append(rnn)
            if self.dropout and layer < self.num_layers - 1:
                self.dropout_layers.append(
                    keras.layers.Dropout(self.dropout, name=f"dropout_l{layer}")
                )

    def stack_layers(self):
        """The layers in call order: recurrent, then `Dropout` between them."""
        units = []
        for layer, rnn in enumerate(self.rnn_layers):
            units.append(rnn)
            if layer < len(self.dropout_layers):
                units.append(self.dropout_layers[layer])
        return units

    def build(self, input_shape):
        shape = tuple(input_shape)
        features = self.input_size
        for rnn in self.rnn_layers:
            rnn.build(shape[:-1] + (features,))
            features = (self.proj_size or self.hidden_size) * (2 if self.bidirectional else 1)
        self.built = True

    def call(self, inputs, initial_state=None, training=None, mask=None):
        if initial_state is not None and not isinstance(initial_state, (list, tuple)):
            initial_state = (initial_state,)
        results = run_stack_layers(
            self.stack_layers(), inputs, initial_state, training=training, mask=mask
        )
        return results if self.return_state else results[0]

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        if self.return_state:
            return [mask] + [None] * len(RECURRENT[self.kind].STATES)
        return mask

    def compute_output_shape(self, input_shape):
        batch, time = input_shape[0], input_shape[1]
        directions = 2 if self.bidirectional else 1
        h_size = self.proj_size or self.hidden_size
        outputs = (batch, time, directions * h_size)
        if not self.return_state:
            return outputs
        states = [(self.num_layers * directions, batch, h_size)]
        if self.kind == "lstm":
            states.append((self.num_layers * directions, batch, self.hidden_size))
        return [outputs] + states

    def get_config(self):
        config = super().get_config()
        config.update(
            kind=self.kind,
            input_size=self.input_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            use_bias=self.use_bias,
            activation=self.activation,
            dropout=self.dropout,
            return_state=self.return_state,
            recurrent_activation=self.recurrent_activation,
            reset_after=self.reset_after,
            proj_size=self.proj_size,
        )
        return config

    @classmethod
    def from_spec(cls, spec, **kwargs):
        """A `TorchRNN` for a `parity.recurrent.RecurrentSpec` (not yet built)."""
        return cls(
            kind=spec.kind, input_size=spec.input_size, hidden_size=spec.hidden_size,
            num_layers=spec.num_layers, bidirectional=spec.bidirectional,
            use_bias=spec.bias, activation=spec.activation, dropout=spec.dropout,
            recurrent_activation=spec.recurrent_activation, reset_after=spec.reset_after,
            proj_size=spec.proj_size, dtype=spec.dtype, **kwargs,
        )
