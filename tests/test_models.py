"""Whole models: layer-by-layer copies and Sequential <-> nn.Sequential."""

import collections

import keras
import numpy as np
import pytest
import torch

import parity
from factories import KERAS_LAYERS, TORCH_LAYERS, keras_weights, randomize_keras
from parity.torch_modules import GRUOutput, LSTMOutput, RNNOutput

HELLO = np.array([[1, 0, 2, 2, 3]])  # "hello" as indices, batch-major (1, 5)


class NotesEmbeddingModel(torch.nn.Module):
    """The notes' 3.3 model: Embedding(4, 10) -> RNN(10, 8, 2 layers) -> Linear(8, 4)."""

    def __init__(self, kind="rnn", fc_first=False):
        super().__init__()
        if fc_first:  # registration order differs from call order
            self.fc = torch.nn.Linear(8, 4)
        self.emb = torch.nn.Embedding(4, 10)
        self.rnn = TORCH_LAYERS[kind](10, 8, num_layers=2, batch_first=True)
        if not fc_first:
            self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        x = self.emb(x)
        x, _ = self.rnn(x)
        return self.fc(x).view(-1, 4)


def keras_notes_model(kind="rnn", stacked_as="layers", hidden=8):
    if stacked_as == "layers":
        recurrent = [KERAS_LAYERS[kind](8, return_sequences=True),
                     KERAS_LAYERS[kind](hidden, return_sequences=True)]
    else:
        recurrent = [parity.TorchRNN(kind, 10, 8, num_layers=2, return_state=False)]
    return keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(4, 10),
                             *recurrent, keras.layers.Dense(4)])


@pytest.mark.parametrize("stacked_as", ["layers", "torchrnn"])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("direction", ["t2k", "k2t"])
def test_notes_model_copy(kind, stacked_as, direction, rng):
    torch_model = NotesEmbeddingModel(kind)
    keras_model = keras_notes_model(kind, stacked_as)
    if direction == "t2k":
        assert parity.copy_weights(torch_model, keras_model) is keras_model
    else:
        randomize_keras(keras_model, rng)
        parity.copy_weights(keras_model, torch_model)
    report = parity.assert_parity(torch_model, keras_model, HELLO)
    assert report["outputs"].shape == (5, 4) and "reshaped" in report["outputs"].note


def test_mapping_pairs_models_whose_orders_differ():
    torch_model = NotesEmbeddingModel("gru", fc_first=True)
    keras_model = keras_notes_model("gru")
    with pytest.raises(parity.ConversionError, match="mismatched pair"):
        parity.copy_weights(torch_model, keras_model)
    names = [layer.name for layer in keras_model.layers]
    mapping = {"fc": names[3], "emb": names[0], "rnn": [names[1], names[2]]}
    parity.copy_weights(torch_model, keras_model, mapping=mapping)
    parity.assert_parity(torch_model, keras_model, HELLO)


def test_mapping_with_unknown_names_is_refused():
    with pytest.raises(parity.ConversionError, match=r"Received: \['nope'\]"):
        parity.copy_weights(NotesEmbeddingModel(), keras_notes_model(), mapping={"fc": "nope"})


def test_mismatch_prints_both_sides_and_writes_nothing():
    torch_model = NotesEmbeddingModel("rnn")
    keras_model = keras_notes_model("rnn", hidden=7)   # second layer too narrow
    before = keras_weights(keras_model)
    with pytest.raises(parity.ConversionError) as info:
        parity.copy_weights(torch_model, keras_model)
    text = str(info.value)
    assert "nothing was written" in text
    for piece in ("#  torch", "keras", "status", "emb: Embedding(num_embeddings=4",
                  "rnn: RNN(input_size=10, hidden_size=8, num_layers=2",
                  "units 7 but the first layer has 8", "input_size: source 8, destination 7"):
        assert piece in text, piece
    assert text.splitlines()[-1].startswith("Received: 2 mismatched pair(s)")
    # the embedding pair was fine, but nothing at all was written
    for a, b in zip(keras_weights(keras_model), before):
        np.testing.assert_array_equal(a, b)


def test_unpaired_layers_are_reported():
    keras_model = keras.Sequential([keras.Input((None,), dtype="int32"),
                                    keras.layers.Embedding(4, 10), keras.layers.Dense(4)])
    with pytest.raises(parity.ConversionError, match="unpaired"):
        parity.copy_weights(NotesEmbeddingModel(), keras_model)


def test_unsupported_weight_bearing_module_is_refused():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.LayerNorm(3))
    with pytest.raises(parity.ConversionError, match=r"module '1' \(LayerNorm\) has weights.*Received: torch"):
        parity.copy_weights(model, keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)]))


SEQUENTIAL_CHILDREN = {
    "emb-rnn-fc": lambda: collections.OrderedDict(
        emb=torch.nn.Embedding(4, 10), rnn=RNNOutput(10, 8, num_layers=2, batch_first=True),
        drop=torch.nn.Dropout(0.2), fc=torch.nn.Linear(8, 4), soft=torch.nn.Softmax(dim=-1)),
    "lstm-bi-last": lambda: collections.OrderedDict(
        lstm=LSTMOutput(3, 5, batch_first=True, bidirectional=True, return_sequences=False),
        relu=torch.nn.ReLU(), fc=torch.nn.Linear(10, 2), sig=torch.nn.Sigmoid()),
    "gru-tanh": lambda: collections.OrderedDict(
        gru=GRUOutput(3, 4, batch_first=True), tanh=torch.nn.Tanh(), idt=torch.nn.Identity(),
        fc=torch.nn.Linear(4, 4, bias=False)),
    "mlp": lambda: collections.OrderedDict(
        a=torch.nn.Linear(3, 6), r=torch.nn.ReLU(), b=torch.nn.Linear(6, 2)),
}


@pytest.mark.parametrize("name", list(SEQUENTIAL_CHILDREN))
def test_sequential_round_trip(name, rng):
    torch_model = torch.nn.Sequential(SEQUENTIAL_CHILDREN[name]())
    keras_model = parity.to_keras(torch_model)
    assert isinstance(keras_model, keras.Sequential)
    if name == "emb-rnn-fc":
        x = HELLO
    elif name == "mlp":
        x = rng.normal(size=(4, 3))
    else:
        x = rng.normal(size=(2, 6, 3))
    parity.assert_parity(torch_model, keras_model, x)
    back = parity.to_torch(keras_model)
    assert isinstance(back, torch.nn.Sequential)
    assert [type(m).__name__ for m in back] == [type(m).__name__ for m in torch_model]
    parity.assert_parity(back, keras_model, x)
    # PyTorch's names survive the round trip (a `.pt` written from `back` loads into the original)
    torch_model.load_state_dict(back.state_dict())


def test_keras_sequential_to_torch(rng):
    keras_model = keras.Sequential([
        keras.Input((None, 3)),
        keras.layers.LSTM(5, return_sequences=True),
        keras.layers.Bidirectional(keras.layers.GRU(4)),
        keras.layers.Dense(2), keras.layers.Activation("softmax"),
    ])
    randomize_keras(keras_model, rng)
    torch_model = parity.to_torch(keras_model)
    assert not torch_model[1].return_sequences and torch_model[1].bidirectional
    parity.assert_parity(torch_model, keras_model, rng.normal(size=(2, 6, 3)))


def test_converted_sequential_saves_and_reloads(tmp_path):
    torch_model = torch.nn.Sequential(SEQUENTIAL_CHILDREN["emb-rnn-fc"]())
    keras_model = parity.to_keras(torch_model)
    keras_model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    parity.assert_parity(torch_model, reloaded, HELLO)


@pytest.mark.parametrize("child,message", [
    (torch.nn.Softmax(dim=1), r"only dim=-1 converts.*Received: dim=1"),
    (torch.nn.GRUCell(3, 4), r"child '0' is a cell.*Received: GRUCell"),
    (torch.nn.Conv1d(3, 3, 1), r"Conv1d.*not a layer parity converts"),
], ids=["softmax-dim1", "cell", "conv1d"])
def test_sequential_to_keras_refusals(child, message):
    with pytest.raises(parity.ConversionError, match=message):
        parity.to_keras(torch.nn.Sequential(child, torch.nn.Linear(3, 3)))


@pytest.mark.parametrize("layer,message", [
    (keras.layers.ReLU(max_value=6.0), r"only the plain ReLU converts.*Received: max_value=6.0"),
    (keras.layers.Activation("gelu"), r"activation 'gelu' is not converted.*Received: activation='gelu'"),
    (keras.layers.Dropout(0.5, noise_shape=(None, 1, 4)), r"noise_shape.*Received: noise_shape"),
], ids=["relu6", "gelu", "noise-shape"])
def test_sequential_to_torch_refusals(layer, message):
    model = keras.Sequential([keras.Input((None, 4)), keras.layers.Dense(4), layer])
    with pytest.raises(parity.ConversionError, match=message):
        parity.to_torch(model)


def test_functional_model_to_torch_is_refused_but_copies():
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(4, 10)(inputs)
    x = keras.layers.SimpleRNN(8, return_sequences=True)(x)
    x = keras.layers.SimpleRNN(8, return_sequences=True)(x)
    model = keras.Model(inputs, keras.layers.Dense(4)(x))
    with pytest.raises(parity.ConversionError, match="converts keras.Sequential models.*copy_weights"):
        parity.to_torch(model)
    torch_model = NotesEmbeddingModel("rnn")
    parity.copy_weights(torch_model, model)
    parity.assert_parity(torch_model, model, HELLO)


def test_torch_model_from_specs_names_match_state_dict():
    specs = [("emb", parity.plain.PlainSpec("embedding", 4, 10, False, "float32")),
             ("rnn", parity.recurrent.RecurrentSpec("lstm", 10, 8, num_layers=2, bidirectional=True)),
             ("fc", parity.plain.PlainSpec("dense", 16, 4, True, "float32"))]
    model = parity.models.torch_model_from_specs(specs)
    keys = list(model.state_dict())
    assert keys[0] == "emb.weight" and "rnn.weight_hh_l1_reverse" in keys and keys[-1] == "fc.bias"
    assert model(torch.tensor(HELLO)).shape == (1, 5, 4)
    parity.assert_parity(model, parity.to_keras(model), HELLO)


@pytest.mark.parametrize("module_type", [RNNOutput, LSTMOutput, GRUOutput])
def test_compare_output_only_modules_uses_their_states(module_type, rng):
    """Time 2 would let `out, h = module(x)` unpack the output tensor itself."""
    module = module_type(3, 4, batch_first=True, bidirectional=True)
    report = parity.assert_parity(module, parity.to_keras(module), rng.normal(size=(2, 2, 3)))
    assert report["h_n"].shape == (2, 2, 4)
