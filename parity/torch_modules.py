"""PyTorch recurrent modules that return one tensor, so they fit `nn.Sequential`.

`nn.LSTM` returns `(output, (h_n, c_n))`, which the next module of an
`nn.Sequential` cannot take. These subclasses keep every weight and name of
their base class (their `state_dict` is the base class's) and return what
the Keras layer in a `keras.Sequential` returns:

- `return_sequences=True`: the output sequence;
- `return_sequences=False`: the last layer's final hidden state, directions
  concatenated (forward, backward) — Keras's `return_sequences=False`.
"""

import torch


class _SequenceOutputMixin:
    def __init__(self, *args, return_sequences=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.return_sequences = return_sequences

    def forward(self, inputs, hx=None):
        output, state = super().forward(inputs, hx)
        if self.return_sequences:
            return output
        h_n = state[0] if isinstance(state, tuple) else state
        directions = 2 if self.bidirectional else 1
        return torch.cat(list(h_n[-directions:]), dim=-1)

    def extra_repr(self):
        return super().extra_repr() + f", return_sequences={self.return_sequences}"


class RNNOutput(_SequenceOutputMixin, torch.nn.RNN):
    """`nn.RNN` returning only its output (see the module docstring)."""


class LSTMOutput(_SequenceOutputMixin, torch.nn.LSTM):
    """`nn.LSTM` returning only its output (see the module docstring)."""


class GRUOutput(_SequenceOutputMixin, torch.nn.GRU):
    """`nn.GRU` returning only its output (see the module docstring)."""


OUTPUT_MODULES = {"rnn": RNNOutput, "lstm": LSTMOutput, "gru": GRUOutput}
