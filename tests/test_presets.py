import json

import pytest

from pgolf.config import preset_names
from pgolf.job.preset import load_preset
from pgolf.errors import ConfigError
from pgolf.runtime import Runtime
from pgolf.train.loop import train

SEEDS = ["record-549", "seed-1150-ttt-slot", "seed-1207-hydra", "seed-1488-slot24", "seed-731-hedge",
         "seed-700-hedge-crownq"]


def test_every_seed_has_a_contest_and_a_mini_preset():
    names = set(preset_names())
    for s in SEEDS:
        assert s in names and f"{s}-mini" in names
    assert not any(n.startswith("_") for n in names)


@pytest.mark.parametrize("name", SEEDS)
def test_seed_presets_declare_their_eval_methods_and_own_pack_settings(name):
    p = load_preset(name)
    assert p.evaluation.get("methods") and p.pack.quant != "int8-rtn" and p.pack.compressor in ("lzma", "zstd")
    mini = load_preset(f"{name}-mini")
    assert mini.pack == p.pack  # a mini packs as its seed does
    scale = load_preset("_mini-scale")  # the shared shape and schedule of every mini
    assert (mini.model.num_layers, mini.model.model_dim) == (4, 256)
    for key in ("tokens_per_step", "warmdown_fraction", "muon_momentum_warmup_fraction", "ema_decay"):
        assert getattr(mini.train, key) == getattr(scale.train, key), key
    assert mini.model.addons.keys() == p.model.addons.keys()
    assert mini.reference == {}


def test_extends_merges_parents_in_order_and_rejects_cycles(tmp_path):
    child = tmp_path / "child.toml"
    child.write_text('extends = ["record-549", "_mini-scale"]\n[model.addons.xsa]\nlast = 1\n')
    p = load_preset(str(child))
    assert p.model.num_layers == 4 and p.model.mlp_mult == 3.0 and p.model.addons["xsa"] == {"last": 1}
    assert p.model.addons["bigram_hash"] == {"buckets": 1536, "dim": 128}
    loop = tmp_path / "loop.toml"
    loop.write_text(f'extends = "{loop}"\n')
    with pytest.raises(ConfigError, match="extends itself"):
        load_preset(str(loop))


@pytest.mark.parametrize("name", ["cpu-mini"] + [f"{s}-mini" for s in SEEDS])
def test_a_short_cpu_training_run_works_for_every_mini(tmp_path, tiny_data, name):
    p = load_preset(name, [
        "model.vocab_size=256", "train.seq_len=64", "train.tokens_per_step=512", "train.iterations=2",
        "train.max_wallclock_seconds=0", "train.warmup_steps=0", 'train.compile="off"',
        "train.val_tokens_limit=1024", "eval.seq_len=64", "eval.batch_tokens=1024",
        "train.gptq_calibration_seq_len=16",  # the GPTQ minis calibrate too, on short sequences here
    ])
    s = train(p, tiny_data, tmp_path / "run", Runtime(), progress=False)
    assert s["steps"] == 2 and s["val_bpb"] == s["val_bpb"]  # finite, not NaN
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["preset"]["model"]["addons"] == p.model.addons


def test_info_reports_groups_and_matches_the_published_count(capsys):
    from pgolf.cli import main

    assert main(["info", "record-549", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["params_total"] == 26_928_220 and r["params_difference"] == 0
    assert sum(r["params_per_group"].values()) == r["params_total"]
    assert r["params_per_group"]["addon:bigram_hash"] == 1536 * 128 + 128 * 512 + 1
    assert r["estimated_total_bytes"] == r["estimated_model_bytes"] + r["code_bytes"]
    assert r["rank_batch_at_8"] == {"micro_batches": 1, "tokens": 98_304, "rows": 48, "row_tokens": 2048}
    assert r["calibration_estimate_h100"] is None  # #549 packs with GPTQ-lite: no Hessians
    assert main(["info", "naive-baseline"]) == 0 and "17,059,912" in capsys.readouterr().out


def test_record_1855_mini_trains_and_switches_its_loop_on_at_its_fraction(tmp_path, tiny_data):
    p = load_preset("record-1855-mini", [
        "model.vocab_size=256", "train.seq_len=64", "train.tokens_per_step=512", "train.iterations=4",
        "train.max_wallclock_seconds=0", "train.warmup_steps=2", 'train.compile="off"', "train.val_tokens_limit=1024",
        "eval.seq_len=64", "eval.batch_tokens=1024", "train.gptq_calibration_seq_len=16",
        "model.addons.depth_recurrence.enable_at=0.5",
    ])
    s = train(p, tiny_data, tmp_path / "run", Runtime(), progress=False)
    assert s["steps"] == 4 and s["val_bpb"] == s["val_bpb"]
    log = (tmp_path / "run" / "train.log").read_text()
    switches = [line for line in log.splitlines() if line.startswith("switch ")]
    assert switches == ["switch step:2 frac:0.500 layer_order:[0, 1, 1, 1, 2, 3]"]


def test_record_1855_packs_with_the_records_quantization_settings():
    p = load_preset("record-1855")
    assert (p.pack.quant, p.pack.clip_search, p.pack.embedding_bits, p.pack.gptq_embedding) == ("gptq-int6", "sdclip", 7, True)
    assert p.pack.sdclip_k == {"attention": 13.0, "mlp": 11.5, "embedding": 14.0}
    assert (p.pack.gate_bits, p.pack.lqer_rank, p.pack.lqer_top, p.pack.lqer_group) == (8, 4, 3, 64)
    assert (p.pack.compressor, p.pack.layouts, p.pack.code_wrapper) == ("pergroup", ["bytes"], "minified-brotli")
    assert p.pack.small_float == p.pack.control_float == "fp16"  # every small tensor in fp16, as its code
    assert (p.train.muon_row_normalize, p.train.muon_coefficients, p.train.min_lr) == (True, "polar-express", 0.10)
    assert p.train.gptq_reserve_seconds >= 8.0 and "doc_isolation" in p.model.addons
    # the record's layout: one packed 98,304-token row per rank, documents cut every 2,048 tokens from
    # their own BOS, the varlen kernel; its rank 0's calibration: 16 x 48 random training windows
    assert (p.train.grad_accum, p.train.packed_rows) == (8, True)
    assert p.model.addons["doc_isolation"] == {"bos_id": 1, "kernel": "varlen", "max_segment": 2048}
    assert (p.train.gptq_calibration_sequences, p.train.gptq_calibration_sampling) == (768, "random")
    assert p.train.bf16_state
    mini = load_preset("record-1855-mini")
    assert mini.model.addons.keys() == p.model.addons.keys() and mini.pack == p.pack


def test_record_2135_is_record_1855_with_what_its_code_adds():
    """#2135's run command over #1855's: AsymLogit, no smear BOS mask, matrix lr 0.028, 32 calibration
    batches, LQER groups of 32, fp16 gates, eval context 2,560, one phase, LoRA without K (lr 8e-5, WD 2),
    the order-16 token tilt; nothing else (its lineage's gated XSA, growing context, AWQ-lite are not in
    its code)."""
    import dataclasses

    from pgolf.artifact.estimate import preset_info

    base, p = load_preset("record-1855"), load_preset("record-2135")
    assert p.model.addons.keys() - base.model.addons.keys() == {"asym_logit"}
    assert p.model.addons["smear_gate_v3"]["bos_id"] == -1 and p.model.addons["xsa"] == base.model.addons["xsa"]
    assert dataclasses.replace(p.model, addons=base.model.addons) == base.model  # QK gain 5.0, as #1855
    assert (p.train.seq_len, p.train.seq_len_schedule, p.train.matrix_lr) == (2048, base.train.seq_len_schedule, 0.028)
    assert (p.train.gptq_calibration_sequences, p.train.gptq_calibration_seq_len) == (1536, 0)
    assert dataclasses.replace(p.train, matrix_lr=0.026, gptq_calibration_sequences=768,
                               gptq_reserve_seconds=8.0) == base.train
    assert dataclasses.replace(p.pack, lqer_group=64, gate_bits=8) == base.pack and p.pack.awq_top == 0
    assert p.eval_methods == ["doc-sliding", "lora-ttt", "phased", "ngram-tilt"] and p.eval.seq_len == 2560
    assert p.evaluation["phased"]["phases"] == 1 and p.evaluation["doc_sliding"]["seq_len"] == 2560
    assert "short_chunks" not in p.evaluation["doc_sliding"] and p.evaluation["doc_sliding"]["batch_docs"] == 64
    lora = p.evaluation["lora_ttt"]
    assert (lora["targets"], lora["lr"], lora["weight_decay"]) == (["q", "v", "o", "mlp", "head"], 8e-5, 2.0)
    assert (p.evaluation["ngram_tilt"]["min_order"], p.evaluation["ngram_tilt"]["max_order"]) == (16, 16)
    info = preset_info(p)
    assert info["reported_params"] == info["params_total"] == 35_945_673  # #2135's log: #1855's + 2 caps
    assert info["projection"]["fits"] and p.reference["artifact_code_bytes"] == 37_155
    mini = load_preset("record-2135-mini")
    assert mini.model.addons.keys() == p.model.addons.keys() and mini.pack == p.pack and mini.reference == {}
    assert mini.eval_methods == p.eval_methods and (mini.model.num_layers, mini.model.model_dim) == (4, 256)
