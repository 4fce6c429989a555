"""examples/port_model.py: the trained 3.3 model ported, saved, reloaded, identical."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[1]


@pytest.mark.parametrize("cell", ["lstm"])
def test_port_model_example(cell, tmp_path):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "port_model.py"), "--cell", cell,
         "--out", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / f"hello_{cell}.keras").is_file()
    assert "identical predictions" in result.stdout
    assert result.stdout.count("PASS") == 2
    assert "Epoch [15/15]" in result.stdout
