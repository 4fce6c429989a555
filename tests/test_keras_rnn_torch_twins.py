"""keras_rnn.torch_twins: the notes' PyTorch models, as importable twins.

The notes' own code (section 3, copied below with only the prints removed)
is the reference: the twins must start from the same weights under the same
seed and train to the same losses.
"""

import re

import pytest
import torch

from keras_rnn import hello, torch_twins

LINE = re.compile(r"^Predicted string: [ehlo]{5}, Epoch \[(\d+)/(\d+)\] loss: \d+\.\d{4}$")


# --- The notes' code, 3.1 / 3.2 / 3.3 (Model classes and training loops) ---

class Notes31(torch.nn.Module):
    def __init__(self, input_size, hidden_size, batch_size):
        super().__init__()
        self.batch_size = batch_size
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.rnncell = torch.nn.RNNCell(input_size=self.input_size, hidden_size=self.hidden_size)

    def forward(self, input, hidden):
        hidden = self.rnncell(input, hidden)
        return hidden

    def init_hidden(self):
        return torch.zeros(self.batch_size, self.hidden_size)


class Notes32(torch.nn.Module):
    def __init__(self, input_size, hidden_size, batch_size, num_layers=1):
        super().__init__()
        self.num_layers = num_layers
        self.batch_size = batch_size
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.rnn = torch.nn.RNN(
            input_size=self.input_size, hidden_size=self.hidden_size, num_layers=num_layers
        )

    def forward(self, input):
        hidden = torch.zeros(self.num_layers, self.batch_size, self.hidden_size)
        out, _ = self.rnn(input, hidden)
        return out.view(-1, self.hidden_size)


class Notes33(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(4, 10)
        self.rnn = torch.nn.RNN(input_size=10, hidden_size=8, num_layers=2, batch_first=True)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        hidden = torch.zeros(2, x.size(0), 8)
        x = self.emb(x)
        x, _ = self.rnn(x, hidden)
        x = self.fc(x)
        return x.view(-1, 4)


ONE_HOT_LOOKUP = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
X_DATA = [1, 0, 2, 2, 3]
Y_DATA = [3, 1, 2, 3, 2]


def notes_31_losses(net):
    inputs = torch.Tensor([ONE_HOT_LOOKUP[x] for x in X_DATA]).view(-1, 1, 4)
    labels = torch.LongTensor(Y_DATA).view(-1, 1)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    losses = []
    for epoch in range(15):
        loss = 0
        optimizer.zero_grad()
        hidden = net.init_hidden()
        for input, label in zip(inputs, labels):
            hidden = net(input, hidden)
            loss += criterion(hidden, label)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def notes_32_33_losses(net, inputs, labels):
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    losses = []
    for epoch in range(15):
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


NOTES = {
    "cell": (lambda: Notes31(4, 4, 1), notes_31_losses),
    "layer": (
        lambda: Notes32(4, 4, 1, 1),
        lambda net: notes_32_33_losses(
            net,
            torch.Tensor([ONE_HOT_LOOKUP[x] for x in X_DATA]).view(5, 1, 4),
            torch.LongTensor(Y_DATA),
        ),
    ),
    "embedding": (
        Notes33,
        lambda net: notes_32_33_losses(net, torch.LongTensor([X_DATA]), torch.LongTensor(Y_DATA)),
    ),
}


@pytest.mark.parametrize("model_kind", hello.HELLO_MODELS)
def test_twin_is_the_notes_code(model_kind):
    make_notes_model, notes_losses = NOTES[model_kind]
    torch.manual_seed(3)
    notes_model = make_notes_model()
    torch.manual_seed(3)
    twin = torch_twins.build_twin(model_kind, "rnn")
    for (name, expected), (twin_name, actual) in zip(
        notes_model.state_dict().items(), twin.state_dict().items(), strict=True
    ):
        assert name == twin_name
        torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    history = torch_twins.train_twin(twin, model_kind, epochs=15, print_fn=None)
    assert history.losses == notes_losses(notes_model)


@pytest.mark.parametrize("cell", hello.CELL_TYPES)
@pytest.mark.parametrize("model_kind", hello.HELLO_MODELS)
def test_twin_shapes(model_kind, cell):
    twin = torch_twins.build_twin(model_kind, cell)
    inputs, labels = torch_twins.hello_tensors(model_kind)
    if model_kind == "cell":
        hidden = twin(inputs[0], twin.init_hidden())
        assert twin.logits(hidden).shape == (1, 4)
        assert isinstance(hidden, tuple) == (cell == "lstm")
    else:
        assert twin(inputs).shape == (5, 4)


def test_hello_tensors_are_the_notes_layouts():
    shapes = {kind: [tuple(t.shape) for t in torch_twins.hello_tensors(kind)] for kind in
              hello.HELLO_MODELS}
    assert shapes == {
        "cell": [(5, 1, 4), (5, 1)],
        "layer": [(5, 1, 4), (5,)],
        "embedding": [(1, 5), (5,)],
    }


def test_train_twin_prints_the_notes_line_per_epoch():
    lines = []
    torch.manual_seed(0)
    history = torch_twins.train_twin(torch_twins.build_twin("layer", "gru"), "layer", 4,
                                     print_fn=lines.append)
    assert [LINE.match(line).groups() for line in lines] == [
        (str(k), "4") for k in range(1, 5)
    ]
    assert [line.split(",")[0][-5:] for line in lines] == history.predictions
    assert [float(line.rsplit(" ", 1)[1]) for line in lines] == pytest.approx(
        history.losses, abs=5e-5
    )


def test_bad_cell_fails_loudly():
    with pytest.raises(ValueError, match="Received: cell='elman'"):
        torch_twins.build_twin("cell", "elman")
