import json
import subprocess
import sys

import numpy as np
import pytest

from pgolf.cli import main
from pgolf.data.shards import write_shard
from tests.conftest import TINY_OVERRIDES


def _sets(extra=()):
    return [a for o in TINY_OVERRIDES + list(extra) for a in ("--set", o)]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("cmd", [[], ["data"], ["data", "build"], ["data", "fetch"], ["data", "stats"],
                                 ["train"], ["pack"], ["eval"], ["run"], ["plan"]])
def test_every_command_has_help(cmd):
    proc = subprocess.run([sys.executable, "-m", "pgolf", *cmd, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "usage: pgolf" in proc.stdout


def test_data_stats_json(capsys, tiny_data):
    code, out, _ = run_cli(capsys, "data", "stats", tiny_data, "--json")
    r = json.loads(out)
    assert code == 0
    for split in ("train", "val"):
        e = r["splits"][split]
        assert e["tokens"] > 0 and e["docs"] > 0 and e["counted_bytes"] > 0
        assert e["normalized_bytes"] == e["counted_bytes"] + e["hidden_bytes"]
    assert r["warnings"], "the fixture corpus hides more than 0.1% of its bytes in <unk>"


def test_train_pack_eval_roundtrip_through_the_cli(capsys, tmp_path, tiny_data):
    run = tmp_path / "run"
    code, out, _ = run_cli(capsys, "train", "--preset", "cpu-mini", "--data", tiny_data, "--out", run,
                           "--json", *_sets())
    trained = json.loads(out)
    assert code == 0 and trained["steps"] == 6
    code, out, _ = run_cli(capsys, "pack", run, "--json")
    packed = json.loads(out)
    assert code == 0 and packed["total_bytes"] == packed["code_bytes"] + packed["model_bytes"]
    assert packed["headroom_bytes"] == 16_000_000 - packed["total_bytes"]
    assert packed["model_bytes"] == (run / "model.pgolf").stat().st_size
    code, out, _ = run_cli(capsys, "eval", run / "model.pgolf", "--data", tiny_data, "--json")
    ev = json.loads(out)
    assert code == 0 and ev["method"] == "standard"
    # int8 round trip stays close to the pre-quantization score on the same tokens.
    code, out, _ = run_cli(capsys, "eval", run / "model.pgolf", "--data", tiny_data, "--json",
                           "--limit-tokens", 2048)
    assert json.loads(out)["val_bpb"] == pytest.approx(trained["val_bpb"], abs=0.02)
    # Mixed-precision int6 and the smallest of all compressors (5 compressors x 3 layouts).
    code, out, _ = run_cli(capsys, "pack", run, "--quant", "gptq-lite-int6", "--compressor", "best",
                           "--out", tmp_path / "int6.pgolf", "--json")
    best = json.loads(out)
    assert code == 0 and set(best["compressed_sizes"]) == {"zlib", "lzma", "zstd", "brotli", "pergroup"}
    assert best["model_bytes"] == min(best["compressed_sizes"].values())
    assert best["compressed_sizes"][best["compressor"]] == best["model_bytes"]
    assert len(best["layout_sizes"]) == 15 and best["layout_sizes"][f"{best['compressor']}/{best['layout']}"] == best["model_bytes"]
    code, out, _ = run_cli(capsys, "eval", tmp_path / "int6.pgolf", "--data", tiny_data, "--json",
                           "--limit-tokens", 2048)
    assert code == 0 and json.loads(out)["val_bpb"] == pytest.approx(trained["val_bpb"], abs=0.05)
    # Over budget: non-zero exit naming the largest groups, and no artifact written, unless allowed.
    over = tmp_path / "over.pgolf"
    code, _, err = run_cli(capsys, "pack", run, "--budget", 1000, "--out", over)
    assert code == 2 and "over the 1,000-byte budget" in err and "largest groups" in err
    assert "nothing was written" in err and not over.exists() and not (tmp_path / "over.pgolf.tmp").exists()
    code, out, _ = run_cli(capsys, "pack", run, "--budget", 1000, "--allow-over-budget", "--out", over, "--json")
    assert code == 1 and json.loads(out)["fits"] is False and over.stat().st_size == json.loads(out)["model_bytes"]


def test_bad_inputs_exit_non_zero_with_one_line(capsys, tmp_path, tiny_data):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "fineweb_val_000000.bin").write_bytes(b"\x00" * 1500)
    (bad / "tokenizer.model").write_bytes((tiny_data / "tokenizer.model").read_bytes())
    code, out, err = run_cli(capsys, "data", "stats", bad)
    assert code == 2 and "bad magic" in err and "fineweb_val_000000.bin" in err
    assert err.count("\n") == 1 and "Traceback" not in err

    # shard ids beyond the model's vocab
    big = tmp_path / "big"
    big.mkdir()
    write_shard(big / "fineweb_val_000000.bin", np.array([1, 300, 5] * 100, dtype=np.uint16))
    write_shard(big / "fineweb_train_000000.bin", np.array([1, 300, 5] * 100, dtype=np.uint16))
    (big / "tokenizer.model").write_bytes((tiny_data / "tokenizer.model").read_bytes())
    code, _, err = run_cli(capsys, "train", "--preset", "cpu-mini", "--data", big, "--out", tmp_path / "r", *_sets())
    assert code == 2 and "token id 300 >= model vocab 256" in err

    # a bad id in the training stream only: caught when the batch holding it is read
    write_shard(big / "fineweb_val_000000.bin", np.array([1, 20, 5] * 100, dtype=np.uint16))
    code, _, err = run_cli(capsys, "train", "--preset", "cpu-mini", "--data", big, "--out", tmp_path / "r", *_sets())
    assert code == 2 and "fineweb_train_000000.bin" in err and "token id 300 >= model vocab 256" in err

    # tokenizer vocab != model vocab
    code, _, err = run_cli(capsys, "train", "--preset", "cpu-mini", "--data", tiny_data, "--out", tmp_path / "r")
    assert code == 2 and "tokenizer vocab 256 != model vocab 1024" in err

    # unknown preset key
    code, _, err = run_cli(capsys, "train", "--preset", "cpu-mini", "--data", tiny_data, "--out", tmp_path / "r",
                           "--set", "train.lr=1")
    assert code == 2 and "unknown key 'train.lr'" in err

    # a model shape the attention cannot split, and a diverging run: one line each, no traceback
    code, _, err = run_cli(capsys, "train", "--preset", "cpu-mini", "--data", tiny_data, "--out", tmp_path / "r",
                           *_sets(["model.num_heads=5"]))
    assert code == 2 and "model_dim must be a multiple of num_heads" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "train", "--preset", "cpu-mini", "--data", tiny_data, "--out", tmp_path / "r",
                           *_sets(["train.tied_embed_lr=1e30", "train.scalar_lr=1e30", "train.matrix_lr=1e30"]))
    assert code == 2 and "train_loss became" in err and "lower the learning rates" in err
    assert "Traceback" not in err and "train_loss became" in err.strip().splitlines()[-1]  # the log, then one line

    # not an artifact / missing
    (tmp_path / "x.pgolf").write_bytes(b"hello world, not an artifact at all")
    code, _, err = run_cli(capsys, "eval", tmp_path / "x.pgolf", "--data", tiny_data)
    assert code == 2 and "bad magic" in err
    code, _, err = run_cli(capsys, "eval", tmp_path / "nope.pgolf", "--data", tiny_data)
    assert code == 2 and "not found" in err
    code, _, err = run_cli(capsys, "pack", tmp_path / "empty_run")
    assert code == 2 and "not found" in err


@pytest.mark.slow
def test_pgolf_run_on_the_embedded_default(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "run", "--json", "--budget-seconds", 4, "--out", tmp_path / "job", "--limit-val-tokens", 4096,
                           "--set", "train.compile=\"off\"", "--set", "train.warmup_steps=0")
    r = json.loads(out)
    assert code == 0 and r["preset"] == "cpu-mini" and r["train"]["steps"] >= 1
    assert r["data"]["split"].startswith("CPython's pydoc topics + standard-library sources")
    assert 0 < r["eval"]["val_bpb"] < 10 and r["pack"]["fits"]
    assert (tmp_path / "job" / "run" / "results.json").is_file()
    assert (tmp_path / "job" / "run" / "model.pgolf").is_file()


def test_failed_train_start_leaves_no_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "data directory not found" in capsys.readouterr().err and not out.exists()
