"""keras_rnn.train and keras_rnn.trajectory: the notes' training, in Keras."""

import re

import keras
import numpy as np
import pytest
import torch

import parity
from keras_rnn import data, hello, models, optimizers, torch_twins, train, trajectory

LINE = re.compile(r"^Predicted string: [ehlo]{5}, Epoch \[(\d+)/(\d+)\] loss: \d+\.\d{4}$")


def numpy_cross_entropy(logits, labels):
    """Per-step cross-entropy from logits: (batch, steps, classes) -> (batch, steps)."""
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]


@pytest.mark.parametrize("step_reduction", train.STEP_REDUCTIONS)
def test_step_cross_entropy(step_reduction):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3, 5, 4)).astype("float32")
    labels = rng.integers(0, 4, (3, 5))
    per_step = numpy_cross_entropy(logits.astype("float64"), labels)
    # 3.1: sum over steps (per sequence); 3.2/3.3: mean over all steps.
    expected = per_step.sum(1).mean() if step_reduction == "sum" else per_step.mean()
    loss = train.StepCrossEntropy(step_reduction)(labels, logits)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)


def test_step_cross_entropy_matches_the_notes_criterion_calls():
    logits = np.random.default_rng(1).standard_normal((1, 5, 4)).astype("float32")
    labels = data.encode("ohlol")[None]
    criterion = torch.nn.CrossEntropyLoss()
    summed = sum(
        criterion(torch.tensor(logits[:, t]), torch.tensor(labels[:, t])) for t in range(5)
    )
    averaged = criterion(torch.tensor(logits[0]), torch.tensor(labels[0]))
    np.testing.assert_allclose(
        float(train.StepCrossEntropy("sum")(labels, logits)), summed.item(), rtol=1e-6
    )
    np.testing.assert_allclose(
        float(train.StepCrossEntropy("mean")(labels, logits)), averaged.item(), rtol=1e-6
    )


def test_step_cross_entropy_rejects_unknown_reduction():
    with pytest.raises(ValueError, match="Received: step_reduction='max'"):
        train.StepCrossEntropy("max")


@pytest.mark.parametrize("model_kind", hello.HELLO_MODELS)
def test_train_hello_reports_the_pre_update_forward_pass(model_kind):
    keras.utils.set_random_seed(0)
    model = models.build_hello_model(model_kind, "lstm")
    x, y = data.hello_arrays(hello.HELLO_INPUT_FORMS[model_kind])
    initial_logits = model.predict_on_batch(x)
    per_step = numpy_cross_entropy(initial_logits.astype("float64"), y)[0]
    reduce = np.sum if hello.NOTES_SETTINGS[model_kind].step_reduction == "sum" else np.mean

    lines = []
    history = train.train_hello(model, model_kind, epochs=3, print_fn=lines.append)

    assert history.predictions[0] == data.decode(initial_logits[0].argmax(-1))
    np.testing.assert_allclose(history.losses[0], reduce(per_step), rtol=1e-5)
    assert history.losses[1] != history.losses[0]  # the weights moved in between
    assert [LINE.match(line).groups() for line in lines] == [("1", "3"), ("2", "3"), ("3", "3")]


def test_train_hello_uses_the_notes_learning_rate_and_torch_style_adam():
    model = models.build_hello_model("cell", "rnn")
    train.compile_hello(model, "cell")
    assert isinstance(model.optimizer, optimizers.TorchAdam)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1)
    assert model.optimizer.step_multipliers == optimizers.summed_bias_multipliers(model)
    keras_adam = train.hello_optimizer(model, "embedding", "keras")
    assert type(keras_adam) is keras.optimizers.Adam
    assert float(keras_adam.learning_rate) == pytest.approx(0.05)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: train.train_hello(m, "cell", epochs=0), "Received: epochs=0"),
        (lambda m: train.train_hello(m, "rnn"), "Received: model='rnn'"),
        (lambda m: train.hello_optimizer(m, "cell", "sgd"), "Received: optimizer='sgd'"),
    ],
)
def test_bad_arguments_fail_loudly(call, message):
    with pytest.raises(ValueError, match=message):
        call(models.build_cell_model("rnn"))


@pytest.mark.parametrize("cell", hello.CELL_TYPES)
@pytest.mark.parametrize("model_kind", hello.HELLO_MODELS)
def test_copied_model_computes_what_the_twin_computes(model_kind, cell):
    torch.manual_seed(5)
    twin = torch_twins.build_twin(model_kind, cell)
    model = models.build_hello_model(model_kind, cell)
    trajectory.copy_twin_weights(twin, model, model_kind)
    x, _ = data.hello_arrays(hello.HELLO_INPUT_FORMS[model_kind])
    inputs, _ = torch_twins.hello_tensors(model_kind)
    if model_kind == "cell":
        hidden, steps = twin.init_hidden(), []
        for step_input in inputs:
            hidden = twin(step_input, hidden)
            steps.append(twin.logits(hidden))
        expected = torch.cat(steps)
    else:
        expected = twin(inputs)
    np.testing.assert_allclose(
        model.predict_on_batch(x)[0], expected.detach().numpy(), rtol=0, atol=1e-6
    )


def test_copy_twin_weights_refuses_another_cell_type():
    twin = torch_twins.build_twin("layer", "lstm")
    model = models.build_hello_model("layer", "gru")
    before = [w.numpy().copy() for w in model.weights]
    with pytest.raises(parity.ConversionError):
        trajectory.copy_twin_weights(twin, model, "layer")
    for weight, value in zip(model.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value)


def test_trajectory_parity_for_the_stacked_lstm():
    # The hardest variant: an embedding (sparse, repeated-row gradients),
    # two stacked LSTMs (two summed biases), a dense layer.
    comparison = trajectory.compare_hello("embedding", "lstm", epochs=15, seed=0)
    assert len(comparison.differences) == 15
    assert comparison.max_difference <= trajectory.TOLERANCE
    assert comparison.keras.predictions == comparison.torch.predictions
    # The PyTorch side is the twin trained alone, from the same seed.
    torch.manual_seed(0)
    alone = torch_twins.train_twin(torch_twins.build_twin("embedding", "lstm"), "embedding",
                                   15, print_fn=None)
    assert comparison.torch.losses == alone.losses


def test_keras_adam_breaks_trajectory_parity():
    # The check can fail: the same comparison with Keras's Adam (one step for
    # the summed bias, Keras's epsilon) drifts well past the tolerance.
    comparison = trajectory.compare_hello("cell", "rnn", epochs=15, seed=0, optimizer="keras")
    assert comparison.max_difference > 100 * trajectory.TOLERANCE


def test_comparison_lines():
    comparison = trajectory.Comparison(
        "layer", "rnn",
        hello.History([1.5, 1.25], ["hhhhh", "ohlol"]),
        hello.History([1.5, 1.2], ["hhhhh", "ohlol"]),
    )
    lines = comparison.lines()
    assert comparison.differences == pytest.approx([0.0, 0.05])
    assert lines[2].split() == ["2", "1.250000", "1.200000", "5.0e-02", "ohlol", "ohlol"]
    assert lines[-1] == "largest |diff|: 5.00e-02"
