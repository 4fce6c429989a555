"""The examples, run as scripts, and the key facts in what they print."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = [
    f"{section} {model}/{cell}"
    for section, model in [("3.1", "cell"), ("3.2", "layer"), ("3.3", "embedding")]
    for cell in ("rnn", "lstm", "gru")
]
LINE = re.compile(r"^Predicted string: ([ehlo]{5}), Epoch \[(\d+)/15\] loss: (\d+\.\d{4})$", re.M)
TOLERANCE = 1e-4


def run_example(name, *args, returncode=0):
    env = dict(os.environ)
    env.setdefault("KERAS_BACKEND", "tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )
    assert result.returncode == returncode, (
        f"{name} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def sections(output):
    """{variant name: the text printed for it}, from the `=== name (...) ===` headers."""
    parts = re.split(r"^=== (\S+ \S+) \(.*\) ===$", output, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_rnncell_shapes():
    output = run_example("rnncell_shapes.py")
    for step in range(3):
        assert f"==================== {step} ====================" in output
    assert output.count("Input size: (1, 4)") == 3
    assert output.count("output size: (1, 2)") == 3
    assert "Hand-written loop equals keras.layers.RNN(cell): True" in output


def test_rnn_shapes():
    output = run_example("rnn_shapes.py", "--cell", "lstm")
    time_major, batch_major = output.split("=== 2.3")
    assert "Output size: (3, 1, 2)" in time_major
    assert "Output size: (1, 3, 2)" in batch_major
    for part in (time_major, batch_major):
        assert "Hidden size: (1, 1, 2)" in part
        assert "Last output step equals final hidden state: True" in part


def test_hello_torch_runs_the_notes_models():
    output = run_example("hello_torch.py")
    printed = sections(output)
    assert list(printed) == VARIANTS
    for text in printed.values():
        assert [int(epoch) for _, epoch, _ in LINE.findall(text)] == list(range(1, 16))
    # The notes' own 3.3 model (embedding + two RNN layers) learns "ohlol"
    # within 15 epochs from any initialisation tried (30 of 30 seeds).
    assert "ohlol first predicted at epoch: -" not in printed["3.3 embedding/rnn"]


def test_hello_keras_trains_every_variant():
    output = run_example("hello_keras.py")
    printed = sections(output)
    assert list(printed) == VARIANTS
    for name, text in printed.items():
        lines = LINE.findall(text)
        assert [int(epoch) for _, epoch, _ in lines] == list(range(1, 16)), name
        losses = [float(loss) for _, _, loss in lines]
        assert losses[-1] < 0.8 * losses[0], f"{name} did not learn: {losses}"
    table = output.split("final loss\n", 1)[1]
    rows = {" ".join(row.split()[:2]): row.split()[2:] for row in table.splitlines()[1:10]}
    assert list(rows) == VARIANTS
    # As in the notes, 3.3 (embedding + two RNN layers) reaches "ohlol"
    # within 15 epochs (it does for 20 of 20 seeds tried); the other
    # variants do for only some seeds at the notes' settings.
    assert 1 <= int(rows["3.3 embedding/rnn"][0]) <= 15


def test_hello_keras_compare_torch(tmp_path):
    plot = tmp_path / "losses.png"
    output = run_example("hello_keras.py", "--compare-torch", "--plot", str(plot))
    printed = sections(output)
    assert list(printed) == VARIANTS
    row = re.compile(r"^\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+([ehlo]{5})\s+([ehlo]{5})$", re.M)
    for name, text in printed.items():
        rows = row.findall(text)
        assert [int(r[0]) for r in rows] == list(range(1, 16)), name
        differences = [abs(float(k) - float(t)) for _, k, t, _, _, _ in rows]
        assert max(differences) <= TOLERANCE, f"{name}: {differences}"
        assert all(k == t for *_, k, t in rows), f"{name}: predictions differ"
        largest = float(re.search(r"largest \|diff\|: (\S+)", text).group(1))
        assert largest <= TOLERANCE
    overall = re.search(r"over all variants: (\S+) \(tolerance 1e-04\): OK", output)
    assert overall and float(overall.group(1)) <= TOLERANCE
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hello_keras_compare_torch_fails_on_drift():
    # keras.optimizers.Adam does not follow torch.optim.Adam: the script
    # must say so and exit non-zero.
    output = run_example(
        "hello_keras.py", "--compare-torch", "--optimizer", "keras",
        "--model", "cell", "--cell", "rnn", returncode=1,
    )
    overall = re.search(r"over all variants: (\S+) \(tolerance 1e-04\): FAIL", output)
    assert overall and float(overall.group(1)) > TOLERANCE
