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


def build_uninitialized(build, *args, **kwargs):
    """`build(*args, **kwargs)` on the meta device, then uninitialised CPU memory.

    For converters that overwrite every weight: PyTorch's `reset_parameters`
    is not paid for.
    """
    device = torch.get_default_device()
    with torch.device("meta"):
        module = build(*args, **kwargs)
    return module.to_empty(device=device)


class _SequenceOutputMixin:
    def __init__(self, *args, return_sequences=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.return_sequences = return_sequences

    def forward_with_state(self, inputs, hx=None):
        """The base class's `(output, state)`, for tools that compare states."""
        return super().forward(inputs, hx)

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




class KerasFormulaRNN(torch.nn.Module):
    """A PyTorch module computing Keras's recurrent formula, for options PyTorch lacks.

    Keras GRU `reset_after=False` (the reset gate applied before the
    recurrent matmul), and activations other than PyTorch's fixed
    tanh/sigmoid (`hard_sigmoid`, `relu`, ...), have no PyTorch layer. This
    module runs the time loop in Python with those formulas and keeps
    PyTorch's names and layouts (`weight_ih_l0` `(gates*hidden, input)`,
    gates in PyTorch's order, `_reverse` for the backward direction), so the
    same converters, files and tools apply. Subclasses fix the kind:
    `KerasSimpleRNN`, `KerasLSTM`, `KerasGRU`.

    GRU with `reset_after=False` (Keras's `gru.py`):
        `z = ra(W_iz x + b_iz + W_hz h + b_hz)`, `r = ra(W_ir x + b_ir + W_hr h + b_hr)`,
        `n = act(W_in x + b_in + W_hn (r * h) + b_hn)`, `h' = z * h + (1 - z) * n`.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional: as for `nn.LSTM`.
        activation: Keras's `activation` (SimpleRNN: the nonlinearity).
        recurrent_activation: Keras's gate activation (LSTM, GRU).
        reset_after: GRU only.
    """

    KIND = None
    GATES = {"rnn": 1, "lstm": 4, "gru": 3}

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, activation="tanh",
                 recurrent_activation="sigmoid", reset_after=True):
        from parity.activations import TORCH_ACTIVATIONS
        from parity.naming import torch_param_name

        super().__init__()
        for name, value in (("activation", activation),
                            ("recurrent_activation", recurrent_activation)):
            if value not in TORCH_ACTIVATIONS:
                raise ValueError(
                    f"{type(self).__name__}: {name} must be one of "
                    f"{sorted(TORCH_ACTIVATIONS)}. Received: {name}={value!r}"
                )
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        self.activation, self.recurrent_activation = activation, recurrent_activation
        self.reset_after = reset_after
        self.proj_size = 0
        gates = self.GATES[self.KIND] * hidden_size
        directions = 2 if bidirectional else 1
        bound = 1.0 / hidden_size ** 0.5
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for reverse in (False, True)[:directions]:
                shapes = {"weight_ih": (gates, layer_input), "weight_hh": (gates, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(gates,), bias_hh=(gates,))
                for weight, shape in shapes.items():
                    # PyTorch's own initialisation: U(-1/sqrt(H), 1/sqrt(H))
                    param = torch.nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
                    self.register_parameter(torch_param_name(weight, layer, reverse), param)

    def _act(self, name):
        from parity.activations import TORCH_ACTIVATIONS

        return TORCH_ACTIVATIONS[name]

    def _step(self, x_proj, h, c, w_hh, b_hh):
        act, ract = self._act(self.activation), self._act(self.recurrent_activation)
        if self.KIND == "rnn":
            return act(x_proj + h @ w_hh.T + (b_hh if b_hh is not None else 0)), None
        if self.KIND == "lstm":
            gates = x_proj + h @ w_hh.T + (b_hh if b_hh is not None else 0)
            i, f, g, o = gates.chunk(4, dim=-1)
            c = ract(f) * c + ract(i) * act(g)
            return ract(o) * act(c), c
        x_r, x_z, x_n = x_proj.chunk(3, dim=-1)
        w_hr, w_hz, w_hn = w_hh.chunk(3, dim=0)
        b_hr, b_hz, b_hn = b_hh.chunk(3) if b_hh is not None else (0, 0, 0)
        r = ract(x_r + h @ w_hr.T + b_hr)
        z = ract(x_z + h @ w_hz.T + b_hz)
        if self.reset_after:
            n = act(x_n + r * (h @ w_hn.T + b_hn))
        else:
            n = act(x_n + (r * h) @ w_hn.T + b_hn)
        return z * h + (1 - z) * n, None

    def forward(self, input, hx=None):
        from parity.naming import torch_param_name

        if isinstance(input, torch.nn.utils.rnn.PackedSequence):
            raise NotImplementedError(
                f"{type(self).__name__} does not take a PackedSequence yet. "
                f"Received: a PackedSequence"
            )
        x = input if self.batch_first else input.transpose(0, 1)
        batch, time = x.shape[0], x.shape[1]
        directions = 2 if self.bidirectional else 1
        slots = self.num_layers * directions
        if hx is None:
            zeros = x.new_zeros(slots, batch, self.hidden_size)
            h0, c0 = zeros, zeros
        elif self.KIND == "lstm":
            h0, c0 = hx
        else:
            h0, c0 = hx, None
        finals_h, finals_c = [], []
        for layer in range(self.num_layers):
            outputs = []
            for d, reverse in enumerate((False, True)[:directions]):
                p = {w: getattr(self, torch_param_name(w, layer, reverse), None)
                     for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
                x_proj = x @ p["weight_ih"].T
                if p["bias_ih"] is not None:
                    x_proj = x_proj + p["bias_ih"]
                slot = layer * directions + d
                h = h0[slot]
                c = c0[slot] if self.KIND == "lstm" else None
                steps = range(time - 1, -1, -1) if reverse else range(time)
                out = [None] * time
                for t in steps:
                    h, c = self._step(x_proj[:, t], h, c, p["weight_hh"], p["bias_hh"])
                    out[t] = h
                outputs.append(torch.stack(out, dim=1))
                finals_h.append(h)
                finals_c.append(c)
            x = torch.cat(outputs, dim=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = torch.nn.functional.dropout(x, self.dropout, training=True)
        output = x if self.batch_first else x.transpose(0, 1)
        h_n = torch.stack(finals_h)
        if self.KIND == "lstm":
            return output, (h_n, torch.stack(finals_c))
        return output, h_n

    def extra_repr(self):
        extra = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        extra += f", bias={self.bias}, batch_first={self.batch_first}"
        extra += f", bidirectional={self.bidirectional}, activation={self.activation!r}"
        if self.KIND != "rnn":
            extra += f", recurrent_activation={self.recurrent_activation!r}"
        if self.KIND == "gru":
            extra += f", reset_after={self.reset_after}"
        return extra


class KerasSimpleRNN(KerasFormulaRNN):
    KIND = "rnn"


class KerasLSTM(KerasFormulaRNN):
    KIND = "lstm"


class KerasGRU(KerasFormulaRNN):
    KIND = "gru"


class KerasSimpleRNNOutput(_SequenceOutputMixin, KerasSimpleRNN):
    """`KerasSimpleRNN` returning only its output."""


class KerasLSTMOutput(_SequenceOutputMixin, KerasLSTM):
    """`KerasLSTM` returning only its output."""


class KerasGRUOutput(_SequenceOutputMixin, KerasGRU):
    """`KerasGRU` returning only its output."""


# (kind, computed by PyTorch's own layer) -> the output-only module
OUTPUT_MODULES = {
    ("rnn", True): RNNOutput, ("lstm", True): LSTMOutput, ("gru", True): GRUOutput,
    ("rnn", False): KerasSimpleRNNOutput, ("lstm", False): KerasLSTMOutput,
    ("gru", False): KerasGRUOutput,
}


class StatefulRNN(torch.nn.Module):
    """Carries a recurrent module's final state into its next call, like Keras `stateful=True`.

    `to_torch` returns this for a Keras layer (or stack) with
    `stateful=True`: each call starts from the state the previous call ended
    with (detached from the previous graph), and `reset_state()` goes back
    to zeros, as Keras's `layer.reset_state()` does. The wrapped module is
    `self.module`; save `wrapper.module.state_dict()` for PyTorch's names.

    Args:
        module: an `nn.RNN/LSTM/GRU` (or `KerasFormulaRNN`).
        batch_size: the fixed batch size of the Keras layer, kept for the
            conversion back (`to_keras` builds a stateful layer for it).

    Example:

    >>> wrapper = StatefulRNN(torch.nn.GRU(3, 4, batch_first=True), batch_size=2)
    >>> out_1, _ = wrapper(torch.zeros(2, 10, 3))   # starts from zeros
    >>> out_2, _ = wrapper(torch.zeros(2, 10, 3))   # continues from out_1's end
    >>> wrapper.reset_state()
    """

    def __init__(self, module, batch_size=None):
        super().__init__()
        self.module = module
        self.batch_size = batch_size
        self.state = None

    def forward(self, input):
        output, state = self.module(input, self.state)
        if isinstance(state, tuple):
            self.state = tuple(s.detach() for s in state)
        else:
            self.state = state.detach()
        return output, state

    def reset_state(self):
        self.state = None

    def extra_repr(self):
        return f"batch_size={self.batch_size}"


class Masking(torch.nn.Module):
    """Keras's `Masking(mask_value)`: zeroes the steps whose features all equal `mask_value`."""

    def __init__(self, mask_value=0.0):
        super().__init__()
        self.mask_value = float(mask_value)

    def forward(self, x):
        return x * step_mask(x, "mask_value", self.mask_value).unsqueeze(-1).to(x.dtype)

    def extra_repr(self):
        return f"mask_value={self.mask_value}"


def step_mask(inputs, kind, mask_value=0.0):
    """Keras's mask for a batch-major input: `(batch, time)` bool.

    `kind="zero_index"`: `Embedding(mask_zero=True)`, index 0 is padding;
    `kind="mask_value"`: `Masking(mask_value)`, a step is padding when all
    its features equal `mask_value`.
    """
    if kind == "zero_index":
        return inputs != 0
    return torch.any(inputs != mask_value, dim=-1)


class MaskedSequential(torch.nn.Sequential):
    """An `nn.Sequential` that masks padded steps the way a Keras model does.

    Keras derives a mask from the input (`Embedding(mask_zero=True)`: index 0;
    `Masking(mask_value)`: all-`mask_value` steps) and its recurrent layers
    skip the masked steps. Here the same mask gives each sequence's length,
    and every recurrent child runs on a `PackedSequence`, so final states are
    taken at each sequence's last valid step, as in Keras. Padding must be on
    the right (a `PackedSequence` cannot describe anything else). Output steps
    at padded positions are zeros here and carried values in Keras: compare
    valid steps only (`parity.compare` does).

    Args:
        children: an `OrderedDict` of modules, as for `nn.Sequential`.
        mask_kind: `"zero_index"` or `"mask_value"`.
        mask_value: for `"mask_value"`.
    """

    def __init__(self, children, mask_kind="zero_index", mask_value=0.0):
        super().__init__(children)
        if mask_kind not in ("zero_index", "mask_value"):
            raise ValueError(
                f"mask_kind must be 'zero_index' or 'mask_value'. Received: {mask_kind!r}"
            )
        self.mask_kind = mask_kind
        self.mask_value = float(mask_value)

    def mask(self, inputs):
        return step_mask(inputs, self.mask_kind, self.mask_value)

    def forward(self, inputs):
        mask = self.mask(inputs)
        lengths = mask.sum(dim=1)
        time = inputs.shape[1]
        prefix = torch.arange(time, device=inputs.device)[None, :] < lengths[:, None]
        if not torch.equal(mask, prefix) or bool((lengths == 0).any()):
            raise ValueError(
                "MaskedSequential: every sequence must be right-padded and at least one "
                "step long (a PackedSequence describes nothing else). Received: a mask "
                f"with rows {torch.nonzero(~(mask == prefix).all(dim=1)).flatten().tolist()} "
                f"not prefixes, lengths {lengths.tolist()}"
            )
        x = inputs
        for module in self:
            if isinstance(module, torch.nn.RNNBase) or isinstance(module, KerasFormulaRNN):
                x = _run_packed(module, x, lengths.cpu(), time)
            else:
                x = module(x)
        return x


def _run_packed(module, x, lengths, time):
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x, lengths, batch_first=True, enforce_sorted=False
    )
    run = getattr(module, "forward_with_state", module.forward)
    output, state = run(packed)
    output, _ = torch.nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=time)
    if getattr(module, "return_sequences", True):
        return output
    h_n = state[0] if isinstance(state, tuple) else state
    directions = 2 if module.bidirectional else 1
    return torch.cat(list(h_n[-directions:]), dim=-1)
