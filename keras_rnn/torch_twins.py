"""The notes' PyTorch hello models, as importable twins of the Keras ones.

Each class is the notes' `Model` as written (PyTorch's default initialisers,
both biases `b_ih` and `b_hh` trainable, time-major where the notes are),
with the cell type as a parameter so that LSTM and GRU versions exist too:

- `CellModel` (3.1): `RNNCell(4, 4)` stepped by hand, the hidden state being
  the logits; `forward(input, hidden)` is one step.
- `LayerModel` (3.2): `RNN(4, 4)` on time-major one-hot input.
- `EmbeddingModel` (3.3): `Embedding(4, 10)` -> `RNN(10, 8, num_layers=2,
  batch_first=True)` -> `Linear(8, 4)`.

`train_twin` is the notes' training loop: `CrossEntropyLoss`, `torch.optim.Adam`
with PyTorch's defaults and the notes' learning rates, one line per epoch.

Example:

>>> _ = torch.manual_seed(0)
>>> twin = build_twin("layer", "lstm")
>>> history = train_twin(twin, "layer", epochs=2, print_fn=None)
>>> len(history.losses)
2
"""

import torch
from torch import nn

from keras_rnn import data, hello

_TORCH_CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}
_TORCH_LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

# The notes feed 3.1 and 3.2 time-major (PyTorch's default) and 3.3
# batch-first.
TIME_MAJOR = {"cell": True, "layer": True, "embedding": False}


def _zero_state(cell, shape):
    """The zero initial state: a tensor, or `(h, c)` for an LSTM."""
    zeros = torch.zeros(shape)
    return (zeros, torch.zeros(shape)) if cell == "lstm" else zeros


class CellModel(nn.Module):
    """The notes' 3.1 model: one cell, stepped by the caller.

    Args:
        cell: `"rnn"`, `"lstm"` or `"gru"`.
        input_size: features per step.
        hidden_size: units; the hidden state is read as the logits.
        batch_size: the batch size `init_hidden` makes a state for.

    Example:

    >>> model = CellModel("gru")
    >>> hidden = model(torch.zeros(1, 4), model.init_hidden())
    >>> model.logits(hidden).shape
    torch.Size([1, 4])
    """

    def __init__(self, cell="rnn", input_size=4, hidden_size=4, batch_size=1):
        super().__init__()
        self.cell = hello.check_cell_type(cell)
        self.batch_size = batch_size
        self.hidden_size = hidden_size
        self.rnncell = _TORCH_CELLS[cell](input_size=input_size, hidden_size=hidden_size)

    def forward(self, input, hidden):
        return self.rnncell(input, hidden)

    def init_hidden(self):
        return _zero_state(self.cell, (self.batch_size, self.hidden_size))

    def logits(self, hidden):
        """The logits in a state: `h` (an LSTM's state is `(h, c)`)."""
        return hidden[0] if self.cell == "lstm" else hidden


class LayerModel(nn.Module):
    """The notes' 3.2 model: one time-major recurrent layer, outputs = logits.

    Args:
        cell: `"rnn"`, `"lstm"` or `"gru"`.
        input_size: features per step.
        hidden_size: units, also the number of classes.
        num_layers: stacked layers (the notes: 1).

    Input: `(seq_len, batch, input_size)`. Output: `(seq_len * batch, hidden_size)`.

    Example:

    >>> LayerModel("rnn")(torch.zeros(5, 1, 4)).shape
    torch.Size([5, 4])
    """

    def __init__(self, cell="rnn", input_size=4, hidden_size=4, num_layers=1):
        super().__init__()
        self.cell = hello.check_cell_type(cell)
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.rnn = _TORCH_LAYERS[cell](
            input_size=input_size, hidden_size=hidden_size, num_layers=num_layers
        )

    def forward(self, input):
        hidden = _zero_state(self.cell, (self.num_layers, input.size(1), self.hidden_size))
        out, _ = self.rnn(input, hidden)
        return out.view(-1, self.hidden_size)


class EmbeddingModel(nn.Module):
    """The notes' 3.3 model: embedding, stacked batch-first layers, linear.

    Args:
        cell: `"rnn"`, `"lstm"` or `"gru"`.
        num_class: vocabulary size and number of classes.
        embedding_size: width of the embedding.
        hidden_size: units of every recurrent layer.
        num_layers: stacked recurrent layers.

    Input: int64 `(batch, seq_len)`. Output: `(batch * seq_len, num_class)`.

    Example:

    >>> EmbeddingModel("gru")(torch.zeros(1, 5, dtype=torch.long)).shape
    torch.Size([5, 4])
    """

    def __init__(self, cell="rnn", num_class=4, embedding_size=10, hidden_size=8, num_layers=2):
        super().__init__()
        self.cell = hello.check_cell_type(cell)
        self.num_class = num_class
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.emb = nn.Embedding(num_class, embedding_size)
        self.rnn = _TORCH_LAYERS[cell](
            input_size=embedding_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            batch_first=True,
        )
        self.fc = nn.Linear(hidden_size, num_class)

    def forward(self, x):
        hidden = _zero_state(self.cell, (self.num_layers, x.size(0), self.hidden_size))
        x = self.emb(x)
        x, _ = self.rnn(x, hidden)
        x = self.fc(x)
        return x.view(-1, self.num_class)


_TWINS = {"cell": CellModel, "layer": LayerModel, "embedding": EmbeddingModel}


def build_twin(model, cell="rnn", **kwargs):
    """Builds the PyTorch twin of a hello model, with the notes' sizes.

    Seed with `torch.manual_seed` first for reproducible initial weights.

    Args:
        model: `"cell"`, `"layer"` or `"embedding"`.
        cell: `"rnn"`, `"lstm"` or `"gru"`.
        **kwargs: passed to the model class.

    Example:

    >>> build_twin("embedding", "lstm").rnn
    LSTM(10, 8, num_layers=2, batch_first=True)
    """
    return _TWINS[hello.check_hello_model(model)](cell, **kwargs)


def hello_tensors(model):
    """`(inputs, labels)` for a twin, in the notes' layouts.

    3.1: inputs `(5, 1, 4)`, labels `(5, 1)` (one label per step);
    3.2: inputs `(5, 1, 4)`, labels `(5,)`; 3.3: inputs `(1, 5)`, labels `(5,)`.

    Example:

    >>> [tuple(t.shape) for t in hello_tensors("cell")]
    [(5, 1, 4), (5, 1)]
    """
    x, y = data.hello_arrays(
        hello.HELLO_INPUT_FORMS[hello.check_hello_model(model)],
        time_major=TIME_MAJOR[model],
    )
    labels = torch.from_numpy(y)
    # 3.1 steps through (label per step) pairs; 3.2/3.3 flatten the outputs
    # with `.view(-1, classes)` and compare them to flat labels.
    return torch.from_numpy(x), labels if model == "cell" else labels.reshape(-1)


def _cell_model_epoch(twin, inputs, labels, criterion):
    """The notes' 3.1 loop: the per-step losses are summed."""
    hidden = twin.init_hidden()
    loss = 0
    step_logits = []
    for input, label in zip(inputs, labels):
        hidden = twin(input, hidden)
        logits = twin.logits(hidden)
        loss += criterion(logits, label)
        step_logits.append(logits)
    return loss, torch.cat(step_logits)


def _sequence_model_epoch(twin, inputs, labels, criterion):
    """The notes' 3.2/3.3 step: one loss, averaged over the steps."""
    outputs = twin(inputs)
    return criterion(outputs, labels), outputs


def train_twin(twin, model, epochs=hello.DEFAULT_EPOCHS, print_fn=print):
    """The notes' training loop for a twin, from its current weights.

    Args:
        twin: a model from `build_twin(model, ...)`.
        model: `"cell"`, `"layer"` or `"embedding"`.
        epochs: number of epochs (the notes: 15).
        print_fn: called with the notes' line each epoch; `None` is silent.

    Returns:
        A `keras_rnn.hello.History`: each epoch's loss before the update and
        the string predicted by that epoch's forward pass.
    """
    hello.check_epochs(epochs)
    inputs, labels = hello_tensors(model)
    epoch_fn = _cell_model_epoch if model == "cell" else _sequence_model_epoch
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(twin.parameters(), lr=hello.NOTES_SETTINGS[model].learning_rate)
    history = hello.History()
    for epoch in range(1, epochs + 1):
        optimizer.zero_grad()
        loss, logits = epoch_fn(twin, inputs, labels, criterion)
        loss.backward()
        optimizer.step()
        history.record(loss.item(), data.decode_logits(logits.detach().numpy()))
        if print_fn is not None:
            print_fn(hello.epoch_line(history.predictions[-1], epoch, epochs, loss.item()))
    return history
