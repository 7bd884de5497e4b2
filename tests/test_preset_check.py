"""Whole-preset checks at load time, the byte projection for trained weights, and the pack
settings each preset names being honoured."""

import pytest
import torch

from tests.conftest import backbone_roles
from pgolf.artifact.estimate import byte_groups, projection
from pgolf.job.preset import load_preset
from pgolf.errors import ConfigError
from pgolf.quant.encoding import decode_state_dict
from pgolf.quant.registry import get_quantizer
from tests.test_presets import SEEDS

CONTEST = ["naive-baseline", *SEEDS]


@pytest.mark.parametrize("override, message", [
    ("pack.quant=gptq-lite-int7", "did you mean 'gptq-lite-int"),
    ("pack.compressor=lzm", "did you mean 'lzma'"),
    ('pack.layouts=["colums"]', "did you mean 'columns'"),
    ("pack.code_wrapper=minifed", "did you mean 'minified'"),
    ("pack.small_float=bf16", "pack.small_float"),
    ("pack.embedding_bits=6", "int8-rtn"),
    ("pack.quant=gptq-int6", "gptq_calibration_sequences"),
    ("pack.magnitude_prune=1.5", "magnitude_prune"),
    ('evaluation.methods=["slidng"]', "did you mean 'sliding'"),
    ("evaluation.slidng.stride=32", "did you mean 'sliding'"),
    ("evaluation.ttt.lrr=0.1", "did you mean 'lr'"),
    ("evaluation.sliding.stride=\"x\"", "expected int"),
    ("train.gptq_calibration_source=val", "train.gptq_calibration_source"),
])
def test_bad_pack_and_evaluation_settings_fail_when_the_preset_loads(override, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_preset("cpu-mini", [override])
    assert "\n" not in str(err.value)


def test_gptq_presets_need_an_eight_second_reserve_on_a_capped_clock():
    sets = ["pack.quant=gptq-int6", "train.gptq_calibration_sequences=8"]
    with pytest.raises(ConfigError, match="at least 8 s"):
        load_preset("cpu-mini", sets + ["train.gptq_reserve_seconds=4"])
    assert load_preset("cpu-mini", sets + ["train.gptq_reserve_seconds=8"]).pack.quant == "gptq-int6"
    assert load_preset("cpu-mini", sets + ["train.max_wallclock_seconds=0"])  # no cap, no reserve needed


@pytest.mark.parametrize("name", ["seed-700-hedge-crownq", "seed-1207-hydra"])
def test_gptq_seeds_calibrate_inside_the_cap_with_their_own_source(name):
    p = load_preset(name)
    assert p.pack.quant.startswith("gptq-int") and p.train.gptq_calibration_sequences > 0
    assert p.train.gptq_reserve_seconds >= 8
    assert p.train.gptq_calibration_source == ("self" if "1207" in name else "train")


def test_a_run_directory_does_not_shadow_a_built_in_preset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cpu-mini").mkdir()  # as `--out cpu-mini` leaves behind
    assert load_preset("cpu-mini").name == "cpu-mini"
    (tmp_path / "mine").mkdir()
    with pytest.raises(ConfigError, match=r"mine is a directory, not a TOML file"):
        load_preset("mine")
    with pytest.raises(ConfigError, match=r"missing.toml is not found"):
        load_preset("missing.toml")


@pytest.mark.parametrize("name", CONTEST)
def test_every_contest_preset_projects_under_the_budget_with_its_own_settings(name):
    proj = projection(load_preset(name))
    assert proj["fits"] and proj["total_bytes"] <= 16_000_000
    assert proj["code_bytes"] > 10_000 and "exported train_gpt.py" in proj["code_counted"]
    assert all(g["source"] for g in proj["groups"].values())


@pytest.mark.parametrize("name", ["naive-baseline", "record-549", "seed-700-hedge-crownq"])
def test_a_source_preset_projects_exactly_its_published_artifact_plus_pgolf_code(name):
    p = load_preset(name)
    proj = projection(p)
    assert proj["model_bytes"] == pytest.approx(p.reference["artifact_bytes"], abs=2)
    exact = sum(g["exact_bytes"] for g in byte_groups(p).values())
    integer = sum(g["integer_params"] for g in byte_groups(p).values())
    assert proj["integer_bytes_per_param"] == pytest.approx((p.reference["artifact_bytes"] - exact) / integer)


def test_pack_honours_float_formats_and_magnitude_pruning():
    torch.manual_seed(0)
    state = {"blocks.0.attn.c_q.weight": torch.randn(300, 256), "blocks.0.attn_scale": torch.randn(256),
             "blocks.0.small.weight": torch.randn(16, 16)}
    p = load_preset("cpu-mini", ["pack.quant=rtn-int6", "pack.small_float=fp32", "pack.control_float=fp16",
                                 "pack.magnitude_prune=0.25"])
    out = {t.name: t for t in get_quantizer("rtn-int6")(state, p.pack, backbone_roles(state))}
    assert out["blocks.0.small.weight"].parts["data"].dtype.name == "float32"
    assert out["blocks.0.attn_scale"].parts["data"].dtype.name == "float16"
    w = decode_state_dict([out["blocks.0.attn.c_q.weight"]])["blocks.0.attn.c_q.weight"]
    assert (w == 0).float().mean() >= 0.25  # the pruned quarter (plus whatever rounds to zero)
    smallest = state["blocks.0.attn.c_q.weight"].abs() <= state["blocks.0.attn.c_q.weight"].abs().flatten().kthvalue(
        int(0.25 * 300 * 256)).values
    assert (w[smallest] == 0).all()


def test_a_preset_projected_over_budget_warns_before_training_and_strict_budget_stops_it(tmp_path, tiny_data, capsys):
    from pgolf.cli import main
    from tests.conftest import TINY_OVERRIDES

    sets = [a for o in TINY_OVERRIDES + ["pack.budget_bytes=100000"] for a in ("--set", o)]
    argv = ["train", "--preset", "cpu-mini", *sets, "--data", str(tiny_data)]
    assert main(argv + ["--out", str(tmp_path / "strict"), "--strict-budget"]) == 2
    err = capsys.readouterr().err
    assert "over the 100,000-byte budget" in err and "--strict-budget" in err and err.count("\n") == 1
    assert not (tmp_path / "strict").exists()  # stopped before anything was trained or written
    assert main(argv + ["--out", str(tmp_path / "warned"), "--json"]) == 0
    assert "warning: preset cpu-mini: projected" in capsys.readouterr().err
    assert (tmp_path / "warned" / "model.safetensors").is_file()


def _choice_keys():
    """(dotted key, valid values, is a list) of every choice field: the preset's sections, every
    add-on's options and every evaluation method's options."""
    import dataclasses

    from pgolf.config import EvalConfig, ModelConfig, PackConfig, TrainConfig, valid_choices
    from pgolf.evaluate.methods.base import load_methods
    from pgolf.model.addons import ADDONS

    out = []

    def walk(cls, prefix):
        for f in dataclasses.fields(cls):
            valid = valid_choices(f)
            if valid is not None:
                out.append((f"{prefix}.{f.name}", valid, "list" in str(f.type)))

    for section, cls in (("model", ModelConfig), ("train", TrainConfig), ("pack", PackConfig), ("eval", EvalConfig)):
        walk(cls, section)
    for name in ADDONS.load().names():
        walk(ADDONS.get(name).Options, f"model.addons.{name}")
    methods = load_methods(None)
    for section in sorted({methods.get(n).section for n in methods.names()}):
        cls = next(methods.get(n).Options for n in methods.names() if methods.get(n).section == section)
        walk(cls, f"evaluation.{section}")
    return sorted(set(out))


CHOICE_KEYS = _choice_keys()


def test_the_choice_fields_cover_what_used_to_be_read_late():
    keys = {k for k, _, _ in CHOICE_KEYS}
    for k in ("train.averaging", "train.compile", "train.muon_coefficients", "train.gptq_calibration_source",
              "train.gptq_calibration_sampling", "model.activation", "pack.quant", "pack.compressors", "pack.layouts",
              "model.addons.doc_isolation.kernel", "evaluation.doc_sliding.order", "evaluation.lora_ttt.reset",
              "evaluation.lora_ttt.targets", "evaluation.phased.boundary_at", "evaluation.ttt.optimizer"):
        assert k in keys, k


@pytest.mark.parametrize("key,valid,is_list", CHOICE_KEYS, ids=[k for k, _, _ in CHOICE_KEYS])
def test_a_misspelled_value_of_every_choice_key_fails_when_the_preset_loads(key, valid, is_list):
    """Before any work: the error names the key and the closest valid value."""
    wrong = valid[0] + "x" if valid[0] else "x"
    value = f'["{wrong}"]' if is_list else f'"{wrong}"'
    with pytest.raises(ConfigError) as exc:
        load_preset("cpu-mini", [f"{key}={value}"])
    message = str(exc.value)
    assert key in message and repr(wrong) in message and (not valid[0] or f"did you mean {valid[0]!r}" in message)
    if key != "pack.quant":  # the valid value loads (a GPTQ quantizer would also need calibration settings)
        assert load_preset("cpu-mini", [f"{key}={value.replace(wrong, valid[0])}"])
