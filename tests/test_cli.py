"""The `parity` command line.

Most cases call `parity.cli.main(argv)` in-process (it returns the exit
code); a few run `python -m parity` as a subprocess to prove the real entry
point, its exit codes and its clean stderr. Every error has its message and
exit code checked, and a failed `convert` leaves no destination file.
"""

import collections
import os
import subprocess
import sys

import keras
import pytest
import torch

from parity import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMATS = [".pt", ".safetensors", ".keras", ".weights.h5"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def notes_model():
    return torch.nn.Sequential(collections.OrderedDict(
        emb=torch.nn.Embedding(20, 4),
        rnn=torch.nn.GRU(4, 6, num_layers=2, bidirectional=True, batch_first=True),
        fc=torch.nn.Linear(12, 3),
    ))


@pytest.fixture
def lstm_pt(tmp_path):
    path = tmp_path / "lstm.pt"
    torch.save(torch.nn.LSTM(3, 5, num_layers=2).state_dict(), path)
    return path


@pytest.fixture
def model_pt(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(notes_model().state_dict(), path)
    return path


def assert_error(code, err, expected_code, *fragments):
    assert code == expected_code, err
    assert err.startswith("parity: error: "), err
    assert "Traceback" not in err
    assert "Received: " in err
    for fragment in fragments:
        assert fragment in err, err


# -- inspect -----------------------------------------------------------------------


def test_inspect_lists_weights_and_layers(capsys, model_pt):
    code, out, _ = run(capsys, "inspect", model_pt)
    assert code == 0
    assert "rnn.weight_hh_l1_reverse  (18, 6)" in out
    assert "fc.bias" in out and "float32" in out
    assert "emb  Embedding(num_embeddings=20, embedding_dim=4, float32)" in out
    assert "GRU(input_size=4, hidden_size=6, num_layers=2, bidirectional=True" in out


def test_inspect_shows_weights_even_when_no_layer_fits(capsys, tmp_path):
    torch.save(torch.nn.LayerNorm(4).state_dict(), tmp_path / "ln.pt")
    code, out, err = run(capsys, "inspect", tmp_path / "ln.pt")
    assert "weight  (4,)" in out
    assert_error(code, err, 4, "form no layer parity converts")


def test_inspect_nonlinearity_applies_to_rnn(capsys, tmp_path):
    torch.save(torch.nn.RNN(3, 4).state_dict(), tmp_path / "rnn.pt")
    code, out, _ = run(capsys, "inspect", tmp_path / "rnn.pt", "--nonlinearity", "relu")
    assert code == 0 and "nonlinearity='relu'" in out


# -- convert -----------------------------------------------------------------------


@pytest.mark.parametrize("dst", FORMATS)
@pytest.mark.parametrize("src", FORMATS)
def test_convert_any_format_to_any_other(capsys, tmp_path, model_pt, src, dst):
    source = tmp_path / f"source{src}"
    if src == ".pt":
        source = model_pt
    else:
        assert run(capsys, "convert", model_pt, source)[0] == 0
    destination = tmp_path / f"converted{dst}"
    code, out, err = run(capsys, "convert", source, destination)
    assert code == 0, err
    assert f"wrote {destination}" in out and "rnn  GRU(" in out
    code, out, err = run(capsys, "check", model_pt, destination, "--seq-len", "7")
    assert code == 0, out + err
    assert "PASS" in out


def test_convert_with_prefix_and_nonlinearity(capsys, tmp_path):
    model = torch.nn.Sequential(collections.OrderedDict(
        rnn=torch.nn.RNN(3, 4, nonlinearity="relu"), norm=torch.nn.LayerNorm(4)))
    torch.save(model.state_dict(), tmp_path / "m.pt")
    code, out, err = run(capsys, "convert", tmp_path / "m.pt", tmp_path / "rnn.keras",
                         "--prefix", "rnn.", "--nonlinearity", "relu")
    assert code == 0, err
    assert "SimpleRNN" in out and "nonlinearity='relu'" in out
    layer = keras.saving.load_model(tmp_path / "rnn.keras", safe_mode=True)
    assert layer.cell.activation.__name__ == "relu"


def test_convert_needs_a_flag_for_a_lone_weight(capsys, tmp_path):
    torch.save(torch.nn.Embedding(10, 4).state_dict(), tmp_path / "e.pt")
    code, _, err = run(capsys, "convert", tmp_path / "e.pt", tmp_path / "e.keras")
    assert_error(code, err, 4, "--embedding ''")
    assert not (tmp_path / "e.keras").exists()
    code, out, err = run(capsys, "convert", tmp_path / "e.pt", tmp_path / "e.keras",
                         "--embedding", "")
    assert code == 0, err
    assert "Embedding(num_embeddings=10, embedding_dim=4" in out


# -- check -------------------------------------------------------------------------


def test_check_fails_on_different_weights(capsys, tmp_path, lstm_pt):
    torch.save(torch.nn.LSTM(3, 5, num_layers=2).state_dict(), tmp_path / "other.pt")
    assert run(capsys, "convert", tmp_path / "other.pt", tmp_path / "other.keras")[0] == 0
    code, out, _ = run(capsys, "check", lstm_pt, tmp_path / "other.keras", "--seq-len", "5")
    assert code == 1
    assert "FAIL at" in out


def test_check_fails_on_different_architectures(capsys, tmp_path, lstm_pt):
    torch.save(torch.nn.GRU(3, 5).state_dict(), tmp_path / "gru.pt")
    code, out, _ = run(capsys, "check", lstm_pt, tmp_path / "gru.pt")
    assert code == 1
    assert "different architectures" in out


def test_check_tolerance_flags(capsys, tmp_path, lstm_pt):
    assert run(capsys, "convert", lstm_pt, tmp_path / "l.weights.h5")[0] == 0
    code, out, _ = run(capsys, "check", tmp_path / "l.weights.h5", lstm_pt, "--seq-len", "5",
                       "--batch", "2", "--seed", "3", "--atol", "0", "--rtol", "0")
    # Zero tolerance: float32 rounding differs between the frameworks.
    assert code == 1 and "atol=0, rtol=0" in out
    code, out, _ = run(capsys, "check", tmp_path / "l.weights.h5", lstm_pt, "--seq-len", "5")
    assert code == 0 and "input: shape (4, 5, 3) float32, seed 0" in out


# -- errors --------------------------------------------------------------------------


def test_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "convert", tmp_path / "nope.pt", tmp_path / "out.keras")
    assert_error(code, err, 2, "nope.pt: no such file")


def test_unknown_formats(capsys, tmp_path, lstm_pt):
    (tmp_path / "w.npz").write_bytes(b"x")
    code, _, err = run(capsys, "inspect", tmp_path / "w.npz")
    assert_error(code, err, 2, "unknown checkpoint format")
    code, _, err = run(capsys, "convert", lstm_pt, tmp_path / "out.onnx")
    assert_error(code, err, 2, "unknown checkpoint format")
    code, _, err = run(capsys, "convert", lstm_pt, tmp_path / "out.h5")
    assert_error(code, err, 2, "read, not written")
    assert sorted(os.listdir(tmp_path)) == ["lstm.pt", "w.npz"]


@pytest.mark.parametrize("suffix", [".pt", ".keras", ".safetensors", ".weights.h5"])
def test_truncated_file(capsys, tmp_path, lstm_pt, suffix):
    source = tmp_path / f"t{suffix}"
    assert run(capsys, "convert", lstm_pt, source)[0] == 0
    data = source.read_bytes()
    source.write_bytes(data[: len(data) // 3])
    code, _, err = run(capsys, "convert", source, tmp_path / "out.safetensors")
    assert_error(code, err, 3, "truncated or corrupt")
    assert not (tmp_path / "out.safetensors").exists()


class WritesAFile:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_code_running_pickle(capsys, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"weight": torch.zeros(2), "payload": WritesAFile(marker)}, tmp_path / "evil.pt")
    code, _, err = run(capsys, "convert", tmp_path / "evil.pt", tmp_path / "out.keras")
    assert_error(code, err, 3, "refused to load", "Received: GLOBAL io.open")
    assert not marker.exists()
    assert not (tmp_path / "out.keras").exists()


def test_pickle_that_is_not_a_tensor_dict(capsys, tmp_path):
    torch.save({"epoch": 4, "model": notes_model().state_dict()}, tmp_path / "ckpt.pt")
    code, _, err = run(capsys, "inspect", tmp_path / "ckpt.pt")
    assert_error(code, err, 3, "not a plain tensor dictionary", "under 'model'")


def test_keras_lambda(capsys, tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x + 1)])
    model.save(tmp_path / "l.keras")
    code, _, err = run(capsys, "convert", tmp_path / "l.keras", tmp_path / "l.pt")
    assert_error(code, err, 3, "Lambda", "safe_mode=True")
    assert not (tmp_path / "l.pt").exists()


def test_weights_that_form_no_layer(capsys, tmp_path):
    torch.save({"rnn.weight_ih_l0": torch.zeros(8, 3)}, tmp_path / "half.pt")
    code, _, err = run(capsys, "convert", tmp_path / "half.pt", tmp_path / "half.keras")
    assert_error(code, err, 4, "layer 'rnn'")
    assert not (tmp_path / "half.keras").exists()


def test_failed_conversion_keeps_an_existing_destination(capsys, tmp_path):
    torch.save({"x": torch.zeros(3, dtype=torch.int64)}, tmp_path / "ints.pt")
    (tmp_path / "out.keras").write_bytes(b"previous")
    code, _, err = run(capsys, "convert", tmp_path / "ints.pt", tmp_path / "out.keras")
    assert code == 4, err
    assert (tmp_path / "out.keras").read_bytes() == b"previous"
    assert sorted(os.listdir(tmp_path)) == ["ints.pt", "out.keras"]


def test_usage_errors(capsys):
    code, _, err = run(capsys, "convert", "only-one.pt")
    assert code == 2 and "the following arguments are required: DST" in err
    code, _, err = run(capsys, "check", "a.pt", "b.keras", "--batch", "0")
    assert code == 2 and "must be at least 1" in err
    assert run(capsys)[0] == 2


# -- help ----------------------------------------------------------------------------


@pytest.mark.parametrize("command,example", [
    ("inspect", "parity inspect lstm.pt"),
    ("convert", "parity convert lstm.pt lstm.keras"),
    ("check", "parity check lstm.pt lstm.keras --seq-len 50 --batch 4 --seed 0"),
])
def test_subcommand_help_shows_an_example_and_exit_codes(capsys, command, example):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert example in out
    assert "exit codes:" in out and "3  truncated or corrupt file" in out


# -- the real entry point ---------------------------------------------------------------


def python_m_parity(*argv, cwd):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "parity", *map(str, argv)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def test_subprocess_help(tmp_path):
    result = python_m_parity("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for text in ("inspect", "convert", "check", "exit codes:", "parity convert model.pt model.keras"):
        assert text in result.stdout


def test_subprocess_error_exit_code(tmp_path):
    result = python_m_parity("convert", "missing.pt", "out.keras", cwd=tmp_path)
    assert result.returncode == 2
    assert "parity: error: missing.pt: no such file" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.keras").exists()


def test_subprocess_convert_then_check(tmp_path, lstm_pt):
    result = python_m_parity("convert", lstm_pt, "lstm.keras", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote lstm.keras: Keras 3 model archive: TorchRNN" in result.stdout
    assert (tmp_path / "lstm.keras").exists()


def test_check_two_keras_files(capsys, tmp_path, model_pt):
    # Neither file is PyTorch: the first is converted to build the PyTorch side.
    for suffix in (".keras", ".weights.h5"):
        assert run(capsys, "convert", model_pt, tmp_path / f"m{suffix}")[0] == 0
    code, out, err = run(capsys, "check", tmp_path / "m.keras", tmp_path / "m.weights.h5",
                         "--seq-len", "6")
    assert code == 0, out + err
    assert "torch side: " + str(tmp_path / "m.keras") in out


def test_check_runs_torch_weights_in_the_keras_structure(capsys, tmp_path):
    # return_sequences=False and a ReLU between layers are not in a state_dict;
    # the .keras file records them, and check runs the .pt weights that way.
    model = keras.Sequential([
        keras.Input((None, 3)), keras.layers.GRU(5, return_sequences=True, name="rnn"),
        keras.layers.LSTM(4, name="last"), keras.layers.ReLU(name="relu"),
        keras.layers.Dense(2, name="fc"),
    ])
    model.save(tmp_path / "k.keras")
    assert run(capsys, "convert", tmp_path / "k.keras", tmp_path / "k.pt")[0] == 0
    code, out, err = run(capsys, "check", tmp_path / "k.pt", tmp_path / "k.keras", "--seq-len", "5")
    assert code == 0, out + err
    assert f"in the structure of {tmp_path / 'k.keras'}" in out
    assert "(4, 2)" in out  # the last state only, as the Keras model returns


def test_nested_prefixes_need_prefix_for_keras(capsys, tmp_path):
    model = torch.nn.ModuleDict({"encoder": torch.nn.ModuleDict({"rnn": torch.nn.GRU(3, 4)}),
                                 "head": torch.nn.Linear(4, 2)})
    torch.save(model.state_dict(), tmp_path / "nested.pt")
    code, _, err = run(capsys, "convert", tmp_path / "nested.pt", tmp_path / "nested.keras")
    assert_error(code, err, 4, "--prefix encoder.rnn")
    assert not (tmp_path / "nested.keras").exists()
    # PyTorch formats keep the names as they are.
    code, _, err = run(capsys, "convert", tmp_path / "nested.pt", tmp_path / "n.safetensors")
    assert code == 0, err
    code, out, err = run(capsys, "convert", tmp_path / "nested.pt", tmp_path / "rnn.keras",
                         "--prefix", "encoder.rnn")
    assert code == 0, err


def test_flags_that_contradict_a_keras_file(capsys, tmp_path):
    model = keras.Sequential([keras.Input((None,), dtype="int32"),
                              keras.layers.Embedding(9, 3, name="emb")])
    model.save(tmp_path / "e.keras")
    code, _, err = run(capsys, "inspect", tmp_path / "e.keras", "--linear", "emb")
    assert_error(code, err, 4, "records as Embedding")
