"""The single-file export: self-contained, and the same numbers as pgolf."""

import json
import subprocess
import sys

import pytest

from pgolf.cli import main
from tests.conftest import TINY_OVERRIDES


def _sets(extra=()):
    return [a for o in TINY_OVERRIDES + list(extra) for a in ("--set", o)]


@pytest.mark.slow
@pytest.mark.parametrize("preset, shrink", [("cpu-mini", []), ("record-549-mini", []),
                                            ("record-549-mini", ["--minify", "--lzma"])])
def test_exported_script_reproduces_pgolf_val_bpb(tmp_path, tiny_data, capsys, preset, shrink):
    extra = ["train.iterations=4"]
    script = tmp_path / "train_gpt.py"
    assert main(["export", preset, "--out", str(script), "--json", *shrink, *_sets(extra)]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["code_bytes"] == script.stat().st_size
    text = script.read_text()
    assert "import pgolf" not in text and "from pgolf" not in text
    if shrink:
        assert exported["sizes"]["lzma_wrapped"] < exported["sizes"]["minified"] < exported["sizes"]["plain"]
    # pgolf itself
    run = tmp_path / "pgolf-run"
    assert main(["train", "--preset", preset, "--data", str(tiny_data), "--out", str(run), *_sets(extra)]) == 0
    assert main(["pack", str(run), "--allow-over-budget"]) in (0, 1)
    capsys.readouterr()
    assert main(["eval", str(run / "model.pgolf"), "--data", str(tiny_data), "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    # the exported script, in a fresh interpreter that cannot import pgolf
    env = {"PYTHONPATH": "", "PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
    proc = subprocess.run([sys.executable, "-I", str(script), "--data", str(tiny_data),
                           "--tokenizer", str(tiny_data / "tokenizer.model"), "--out", str(tmp_path / "exp-run"),
                           "--device", "cpu"], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"parity pgolf={ours['val_bpb']!r} exported={theirs['val_bpb']!r}")
    assert theirs["val_bpb"] == pytest.approx(ours["val_bpb"], abs=1e-6)
    assert "roundtrip_exact val_loss:" in proc.stdout
    assert theirs["bytes_code"] == script.stat().st_size
