"""Architecture inference from a state_dict alone (`parity.infer`).

The matrix: every recurrent configuration the converters handle (type x
nonlinearity x bias x layers x bidirectional x dtype, and the cells) must be
read back from its `state_dict` as exactly the spec of the module that wrote
it. Then whole models, the Linear/Embedding rule, and every refusal.
"""

import collections
import itertools

import numpy as np
import pytest
import torch

from factories import KINDS, TORCH_CELLS, torch_kwargs, torch_layer
from parity import infer, recurrent
from parity.errors import ConversionError
from parity.plain import PlainSpec

LAYER_CASES = list(itertools.product(
    KINDS, (True, False), (1, 2, 3), (False, True), ("float32", "float64"),
))


def layer_id(case):
    kind, bias, layers, bi, dtype = case
    return f"{kind}-{layers}layer-{'bi' if bi else 'uni'}-{'bias' if bias else 'nobias'}-{dtype}"


@pytest.mark.parametrize("case", LAYER_CASES, ids=[layer_id(c) for c in LAYER_CASES])
def test_layer_matrix(case):
    kind_id, bias, layers, bi, dtype = case
    kind, activation = KINDS[kind_id]
    module = torch_layer(kind, activation, 3, 4, layers, bi, bias, dtype=getattr(torch, dtype))
    inferred = infer.infer_layers(module.state_dict(), nonlinearity=activation)
    assert inferred == [("", recurrent.torch_spec(module))]


CELL_CASES = list(itertools.product(KINDS, (True, False)))


@pytest.mark.parametrize("case", CELL_CASES,
                         ids=[f"{k}-cell-{'bias' if b else 'nobias'}" for k, b in CELL_CASES])
def test_cell_matrix(case):
    kind_id, bias = case
    kind, activation = KINDS[kind_id]
    cell = TORCH_CELLS[kind](3, 4, bias=bias, **torch_kwargs(kind, activation))
    assert infer.infer_layers(cell.state_dict(), nonlinearity=activation) == [
        ("", recurrent.torch_spec(cell))
    ]


def notes_model():
    """The notes' model: Embedding -> 2-layer LSTM -> Linear."""
    return torch.nn.Sequential(collections.OrderedDict(
        emb=torch.nn.Embedding(50, 8),
        rnn=torch.nn.LSTM(8, 16, num_layers=2, batch_first=True),
        fc=torch.nn.Linear(16, 3),
    ))


def test_whole_model_in_module_order():
    layers = infer.infer_layers(notes_model().state_dict())
    assert [p for p, _ in layers] == ["emb", "rnn", "fc"]
    assert layers[0][1] == PlainSpec("embedding", 50, 8, False, "float32")
    assert layers[1][1] == recurrent.RecurrentSpec("lstm", 8, 16, num_layers=2)
    assert layers[2][1] == PlainSpec("dense", 16, 3, True, "float32")


def test_nested_prefixes_and_module_order():
    model = torch.nn.ModuleDict({
        "encoder": torch.nn.ModuleDict({"rnn": torch.nn.GRU(4, 6, bidirectional=True)}),
        "head": torch.nn.Linear(12, 2),
    })
    layers = infer.infer_layers(model.state_dict())
    assert [p for p, _ in layers] == ["encoder.rnn", "head"]
    assert layers[0][1].bidirectional and layers[0][1].kind == "gru"


def test_group_by_prefix_keeps_first_appearance_order():
    sd = {"b.weight": 1, "a.weight": 2, "b.bias": 3, "weight": 4}
    assert infer.group_by_prefix(sd) == [
        ("b", {"weight": 1, "bias": 3}), ("a", {"weight": 2}), ("", {"weight": 4}),
    ]


# -- Linear or Embedding: the documented rule ----------------------------------------


def lone_weight(rows, cols):
    return {"weight": torch.zeros(rows, cols)}


def prefixed(prefix, tensors):
    return {infer.join_key(prefix, k): v for k, v in tensors.items()}


def test_bias_makes_a_linear():
    sd = torch.nn.Linear(3, 5).state_dict()
    assert infer.infer_layers(sd) == [("", PlainSpec("dense", 3, 5, True, "float32"))]


@pytest.mark.parametrize("name", ["emb", "embed", "embedding", "embeddings", "word_emb.emb2"])
def test_name_starting_with_emb_is_an_embedding(name):
    layers = infer.infer_layers(prefixed(name, lone_weight(10, 4)))
    assert layers[0][1].kind == "embedding"


def test_next_recurrent_input_decides():
    # (10, 4) feeding a GRU with input 4: the output is 4 wide -> Embedding(10, 4).
    sd = {**prefixed("encoder", lone_weight(10, 4)),
          **prefixed("rnn", torch.nn.GRU(4, 5).state_dict())}
    assert infer.infer_layers(sd)[0][1] == PlainSpec("embedding", 10, 4, False, "float32")
    # (4, 10) feeding a GRU with input 4: the output is 4 wide -> Linear(10, 4).
    sd = {**prefixed("proj", lone_weight(4, 10)),
          **prefixed("rnn", torch.nn.GRU(4, 5).state_dict())}
    assert infer.infer_layers(sd)[0][1] == PlainSpec("dense", 10, 4, False, "float32")


def test_not_first_is_a_linear():
    sd = {**prefixed("rnn", torch.nn.GRU(4, 5).state_dict()),
          **prefixed("out", lone_weight(2, 5))}
    assert infer.infer_layers(sd)[1][1] == PlainSpec("dense", 5, 2, False, "float32")


def test_override_flags():
    sd = lone_weight(10, 4)
    assert infer.infer_layers(sd, embedding=[""])[0][1].kind == "embedding"
    assert infer.infer_layers(sd, linear=[""])[0][1] == PlainSpec("dense", 4, 10, False, "float32")
    sd = prefixed("emb", lone_weight(10, 4))
    assert infer.infer_layers(sd, linear=["emb"])[0][1].kind == "dense"


def test_bare_lone_weight_is_ambiguous():
    with pytest.raises(ConversionError, match=r"--embedding '' or --linear ''") as error:
        infer.infer_layers(lone_weight(10, 4))
    assert "nn.Embedding(10, 4) or nn.Linear(4, 10, bias=False)" in str(error.value)
    assert "Received: weight shape (10, 4), no bias" in str(error.value)


def test_override_for_a_missing_prefix():
    with pytest.raises(ConversionError, match=r"Received: \['nope'\]"):
        infer.infer_layers(lone_weight(10, 4), embedding=["nope"])


def test_override_on_a_recurrent_layer_is_refused():
    with pytest.raises(ConversionError, match="only decide between"):
        infer.infer_layers(prefixed("rnn", torch.nn.GRU(4, 5).state_dict()), embedding=["rnn"])


# -- Refusals ----------------------------------------------------------------------------


def assert_loud(error, *fragments):
    message = str(error.value)
    assert "Received: " in message.splitlines()[-1], message
    for fragment in fragments:
        assert fragment in message, message


def test_unsupported_group_names_its_prefix():
    model = torch.nn.Sequential(collections.OrderedDict(
        rnn=torch.nn.GRU(4, 5), norm=torch.nn.LayerNorm(5)))
    with pytest.raises(ConversionError) as error:
        infer.infer_layers(model.state_dict(), source="model.pt")
    assert_loud(error, "model.pt: layer 'norm'", "--prefix", "norm.weight")


def test_missing_and_misshapen_weights_in_one_error():
    sd = torch.nn.LSTM(3, 4, num_layers=2).state_dict()
    del sd["weight_hh_l1"]
    sd["bias_ih_l0"] = torch.zeros(7)
    with pytest.raises(ConversionError) as error:
        infer.infer_layers(sd)
    assert_loud(error, "missing weight_hh_l1 (16, 4)", "bias_ih_l0: expected shape (16,), received (7,)")


def test_partial_bias_is_refused():
    sd = torch.nn.GRU(3, 4).state_dict()
    del sd["bias_hh_l0"]
    with pytest.raises(ConversionError) as error:
        infer.infer_layers(sd)
    assert_loud(error, "missing bias_hh_l0")


def test_gate_multiple_that_is_no_layer():
    sd = {"weight_ih_l0": torch.zeros(8, 3), "weight_hh_l0": torch.zeros(8, 4)}
    with pytest.raises(ConversionError) as error:
        infer.infer_layers(sd)
    assert_loud(error, "8 gate rows for hidden size 4")


def test_projected_lstm_is_refused():
    with pytest.raises(ConversionError) as error:
        infer.infer_layers(torch.nn.LSTM(3, 8, proj_size=2).state_dict())
    assert_loud(error, "proj_size")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_unsupported_dtype(dtype):
    with pytest.raises(ConversionError) as error:
        infer.infer_layers(torch.nn.GRU(3, 4).to(dtype).state_dict())
    assert_loud(error, str(dtype).replace("torch.", ""))


def test_mixed_cell_and_layer_names():
    sd = {**torch.nn.GRUCell(3, 4).state_dict(), **torch.nn.GRU(3, 4).state_dict()}
    with pytest.raises(ConversionError) as error:
        infer.infer_layers(sd)
    assert_loud(error, "mixes a cell's names")


def test_empty_state_dict():
    with pytest.raises(ConversionError, match="holds no weights"):
        infer.infer_layers({}, source="x.pt")


def test_bad_nonlinearity():
    with pytest.raises(ConversionError, match="Received: nonlinearity='gelu'"):
        infer.infer_layers(torch.nn.RNN(3, 4).state_dict(), nonlinearity="gelu")


def test_numpy_arrays_work_like_tensors():
    sd = {k: v.numpy() for k, v in torch.nn.LSTM(3, 4).state_dict().items()}
    assert infer.infer_layers(sd)[0][1] == recurrent.RecurrentSpec("lstm", 3, 4)


# -- Keras variables -----------------------------------------------------------------------


@pytest.mark.parametrize("kind,gates,bias", [
    ("rnn", 1, (4,)), ("lstm", 4, (16,)), ("gru", 3, (2, 12)), ("gru", 3, None),
])
def test_keras_recurrent_slot(kind, gates, bias):
    fields = infer.keras_recurrent_slot((3, gates * 4), (4, gates * 4), bias, "x")
    assert fields == (kind, 3, 4, bias is not None)


def test_keras_gru_reset_after_false_is_refused():
    with pytest.raises(ConversionError) as error:
        infer.keras_recurrent_slot((3, 12), (4, 12), (12,), "gru")
    assert_loud(error, "reset_after=False")


def test_keras_cudnn_bias_is_refused():
    with pytest.raises(ConversionError) as error:
        infer.keras_recurrent_slot((3, 16), (4, 16), (32,), "cudnn_lstm")
    assert_loud(error, "expected bias shape (16,)")


def test_keras_stack_must_chain():
    slots = [(0, False, ("lstm", 3, 4, True)), (1, False, ("lstm", 5, 4, True))]
    with pytest.raises(ConversionError) as error:
        infer.keras_recurrent_spec(slots, "tanh", [np.dtype("float32")], "stack")
    assert_loud(error, "layer 1, forward")


def test_meta_device_allocates_nothing_for_big_layers():
    # 4 layers of 4096 units would be ~2 GB of float32 if built for real.
    spec = recurrent.RecurrentSpec("lstm", 4096, 4096, num_layers=4, bidirectional=True)
    shapes = infer.expected_shapes(spec)
    assert shapes["weight_ih_l3_reverse"] == (16384, 8192)
