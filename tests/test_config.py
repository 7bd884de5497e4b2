import pytest

from pgolf.config import preset_names
from pgolf.job.preset import load_preset
from pgolf.errors import ConfigError


def test_builtin_presets_load():
    assert {"naive-baseline", "cpu-mini"} <= set(preset_names())
    base = load_preset("naive-baseline")
    assert (base.model.num_layers, base.model.model_dim, base.train.tokens_per_step) == (9, 512, 524288)
    mini = load_preset("cpu-mini")
    assert (mini.model.num_layers, mini.model.model_dim, mini.model.num_heads, mini.model.num_kv_heads,
            mini.train.seq_len, mini.train.tokens_per_step) == (4, 256, 4, 2, 512, 8192)


def test_unknown_key_names_the_key_and_the_closest_valid_one(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[train]\nmatrx_lr = 0.02\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train.matrx_lr'; did you mean 'matrix_lr'"):
        load_preset(str(path))


def test_unknown_section_is_rejected(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[trian]\nseed = 1\n")
    with pytest.raises(ConfigError, match="'trian'; did you mean 'train'"):
        load_preset(str(path))


def test_wrong_type_is_rejected_with_the_key(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[model]\nnum_layers = "nine"\n')
    with pytest.raises(ConfigError, match=r"model.num_layers: expected int, got str"):
        load_preset(str(path))
    path.write_text("[model]\ntie_embeddings = 1\n")
    with pytest.raises(ConfigError, match="expected bool"):
        load_preset(str(path))


def test_int_is_accepted_for_float_and_overrides_apply():
    p = load_preset("cpu-mini", ["train.matrix_lr=1", "model.activation=leaky_relu2", 'pack.compressor="lzma"'])
    assert p.train.matrix_lr == 1.0 and isinstance(p.train.matrix_lr, float)
    assert p.model.activation == "leaky_relu2" and p.pack.compressor == "lzma"


def test_unknown_preset_name_suggests_closest():
    with pytest.raises(ConfigError, match="did you mean 'cpu-mini'"):
        load_preset("cpu-mnii")


def test_invalid_toml_is_a_config_error(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[model\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_preset(str(path))
