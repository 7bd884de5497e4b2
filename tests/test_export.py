"""The single-file export: self-contained, and the same numbers as pgolf."""

import json
import re
import subprocess
import sys

import pytest

from pgolf.cli import main
from tests.conftest import TINY_OVERRIDES


def _sets(extra=()):
    return [a for o in TINY_OVERRIDES + list(extra) for a in ("--set", o)]


SEED_EVAL = ["evaluation.sliding.seq_len=64", "evaluation.sliding.stride=32", "evaluation.ttt.chunk_tokens=512"]
# record-1855-mini: doc-sliding + LoRA TTT + phased SGD, packed with GPTQ, LQER, int8 gates and pergroup
FRONTIER_EVAL = ["evaluation.doc_sliding.seq_len=64", "evaluation.doc_sliding.chunk_tokens=32",
                 "evaluation.phased.prefix_docs=4", "evaluation.phased.chunk_tokens=256",
                 "evaluation.lora_ttt.rank=4", "train.gptq_calibration_seq_len=16",
                 "model.num_layers=4"]  # the mini's parallel lanes start at layer 3


@pytest.mark.slow
@pytest.mark.parametrize("preset, shrink, evaluation", [
    ("cpu-mini", [], SEED_EVAL), ("record-549-mini", [], SEED_EVAL),
    ("record-549-mini", ["--minify", "--lzma"], SEED_EVAL),
    ("record-1855-mini", ["--wrapper", "minified-brotli"], FRONTIER_EVAL)])
def test_exported_script_reproduces_pgolf_val_bpb(tmp_path, tiny_data, capsys, preset, shrink, evaluation):
    extra = ["train.iterations=4", *evaluation]
    script = tmp_path / "train_gpt.py"
    assert main(["export", preset, "--out", str(script), "--json", *shrink, *_sets(extra)]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["code_bytes"] == script.stat().st_size
    text = script.read_text()
    assert "import pgolf" not in text and "from pgolf" not in text
    if shrink == ["--minify", "--lzma"]:
        assert exported["sizes"]["lzma_wrapped"] < exported["sizes"]["minified"] < exported["sizes"]["plain"]
    elif shrink:
        assert exported["sizes"]["minified-brotli"] < exported["sizes"]["plain"]
    # pgolf itself
    run = tmp_path / "pgolf-run"
    assert main(["train", "--preset", preset, "--data", str(tiny_data), "--out", str(run), *_sets(extra)]) == 0
    assert main(["pack", str(run), "--allow-over-budget"]) in (0, 1)
    capsys.readouterr()
    assert main(["eval", str(run / "model.pgolf"), "--data", str(tiny_data), "--methods", "preset", "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    # the exported script as the contest runs a record: no flags, the contest's default data and
    # tokenizer paths, in an interpreter where pgolf cannot be imported
    datasets = tmp_path / "data" / "datasets"
    datasets.mkdir(parents=True)
    (datasets / "fineweb10B_sp256").symlink_to(tiny_data)
    (tmp_path / "data" / "tokenizers").mkdir()
    (tmp_path / "data" / "tokenizers" / "fineweb_256_bpe.model").symlink_to(tiny_data / "tokenizer.model")
    proc = run_without_pgolf(script, tmp_path, env={})
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"parity pgolf={ours['val_bpb']!r} exported={theirs['val_bpb']!r}")
    assert theirs["val_bpb"] == pytest.approx(ours["val_bpb"], abs=1e-6)
    assert "roundtrip_exact val_loss:" in proc.stdout
    assert theirs["bytes_code"] == script.stat().st_size


BLOCK_PGOLF = ("import runpy, sys; sys.modules['pgolf'] = None; sys.argv = [sys.argv[1]]; "
               "runpy.run_path(sys.argv[0], run_name='__main__')")


def run_without_pgolf(script, cwd, env):
    """Run `script` with no arguments in a fresh interpreter in which `import pgolf` fails."""
    import os

    full_env = {k: v for k, v in os.environ.items() if k not in ("DATA_PATH", "TOKENIZER_PATH", "PGOLF_TEST_FAULT")}
    full_env.update({"PYTHONPATH": "", **env})
    return subprocess.run([sys.executable, "-c", BLOCK_PGOLF, str(script)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=full_env)


@pytest.mark.slow
def test_exported_file_reads_the_contest_env_vars_scores_the_legal_methods_and_lists_its_requirements(
        tmp_path, tiny_data, capsys):
    from pgolf.artifact.export import export_script, preset_requirements
    from pgolf.job.preset import load_preset

    sets = ["train.iterations=3", "evaluation.ttt.chunk_tokens=512", "evaluation.sliding.seq_len=64",
            "evaluation.sliding.stride=32"]
    script = tmp_path / "train_gpt.py"
    assert main(["export", "record-549-mini", "--out", str(script), "--json", *_sets(sets)]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["wrapper"] == "minified-lzma"  # the preset's own pack.code_wrapper
    plain = export_script(load_preset("record-549-mini", TINY_OVERRIDES + sets))
    assert "PGOLF_TEST_FAULT" not in plain and "fault_hook" not in plain  # no test hooks shipped
    imported = {(a or b).split(".")[0]
                for a, b in re.findall(r"^\s*(?:import\s+([\w.]+)|from\s+([\w.]+)\s+import\b)", plain, re.M)}
    needs = preset_requirements(load_preset("record-549-mini", TINY_OVERRIDES + sets))
    assert set(needs) == imported - set(sys.stdlib_module_names) - {"torch", "numpy", "sentencepiece", "__future__"}
    assert exported["requirements"] == needs and "safetensors" in needs  # record-549 packs with lzma (stdlib)
    zstd = preset_requirements(load_preset("seed-700-hedge-crownq"))
    assert "zstandard" in zstd and "brotli" not in zstd  # a compressor's library only where the preset uses it
    proc = run_without_pgolf(script, tmp_path, env={"DATA_PATH": str(tiny_data),
                                                    "TOKENIZER_PATH": str(tiny_data / "tokenizer.model")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert theirs["methods"] == "sliding,ttt"  # the preset's legal composition, not standard alone
    assert theirs["bytes_code"] == script.stat().st_size
