import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import backbone_roles
from pgolf.errors import ConfigError
from pgolf.artifact.format import Artifact, decode_artifact, encode_artifact
from pgolf.config import PackConfig
from pgolf.quant.encoding import decode_state_dict
from pgolf.quant.gptq_lite import clip_search_matrix
from pgolf.quant.layout import LAYOUTS, relayout
from pgolf.quant.packing import pack_signed, packed_nbytes, unpack_signed
from pgolf.quant.registry import get_quantizer
from pgolf.quant.rtn import rtn_matrix


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 8).flatmap(lambda b: st.tuples(
    st.just(b), st.lists(st.integers(-(1 << (b - 1)), (1 << (b - 1)) - 1), max_size=200))))
def test_property_bit_packing_roundtrips(case):
    bits, values = case
    packed = pack_signed(np.array(values, dtype=np.int16), bits)
    assert packed.size == packed_nbytes(len(values), bits)
    assert unpack_signed(packed, bits, len(values)).tolist() == values


def test_int6_costs_six_bits_and_int5_five():
    assert pack_signed(np.zeros(4, dtype=np.int16), 6).size == 3
    assert pack_signed(np.zeros(8, dtype=np.int16), 5).size == 5
    with pytest.raises(ValueError):
        pack_signed(np.array([32]), 6)


@pytest.mark.parametrize("bits, qmax", [(8, 127), (6, 31), (5, 15)])
def test_rtn_is_round_to_nearest_on_a_symmetric_row_grid(bits, qmax):
    torch.manual_seed(0)
    w = torch.randn(16, 200) * torch.logspace(-3, 0, 16)[:, None]
    q, s = rtn_matrix(w, bits)
    s32 = s.float()[:, None]
    assert q.abs().max() <= qmax
    torch.testing.assert_close(s.float(), (w.abs().amax(1) / qmax).half().float())
    assert torch.equal(q, torch.clamp(torch.round(w / s32), -qmax, qmax).to(q.dtype))
    assert ((q * s32 - w).abs() <= s32 / 2 + 1e-6 * w.abs().amax(1, keepdim=True)).all()


def test_gptq_lite_never_does_worse_than_rtn_and_granularities_differ():
    torch.manual_seed(1)
    w = torch.randn(64, 512)
    w[3, 7] = 12.0  # an outlier row, where clipping pays
    def err(q, s):
        return (q.float() * s.float()[:, None] - w).square().sum(1)
    rtn = err(*rtn_matrix(w, 6))
    per_matrix = err(*clip_search_matrix(w, 6, "matrix"))
    per_row = err(*clip_search_matrix(w, 6, "row"))
    assert per_matrix.sum() <= rtn.sum() + 1e-6
    assert (per_row <= rtn + 1e-6).all() and per_row.sum() <= per_matrix.sum() + 1e-6
    assert per_row[3] < rtn[3]


@pytest.mark.parametrize("quant", ["rtn-int6", "rtn-int5", "rtn-int8", "gptq-lite-int6"])
def test_mixed_precision_policy_and_bit_identical_roundtrip(quant):
    torch.manual_seed(0)
    state = {"tok_emb.weight": torch.randn(300, 256) * 0.02, "blocks.0.mlp.fc.weight": torch.randn(512, 256) * 0.02,
             "blocks.0.attn_scale": torch.randn(256), "blocks.0.small.weight": torch.randn(8, 8)}
    enc = {t.name: t for t in get_quantizer(quant)(state, PackConfig(), backbone_roles(state))}
    assert enc["tok_emb.weight"].encoding == "int_per_row"  # embedding stays int8
    bits = int(quant[-1])
    if bits < 8:
        assert enc["blocks.0.mlp.fc.weight"].encoding == "int_per_row_packed"
        assert enc["blocks.0.mlp.fc.weight"].parts["q"].nbytes == 512 * 256 * bits // 8
    assert enc["blocks.0.attn_scale"].parts["data"].dtype == np.float32
    assert enc["blocks.0.small.weight"].parts["data"].dtype == np.float16
    first = decode_state_dict(list(enc.values()))
    art = decode_artifact(encode_artifact(Artifact(preset={}, quant=quant, tensors=list(enc.values()), compressor="lzma")))
    again = decode_state_dict(art.tensors)
    assert all(torch.equal(first[k], again[k]) for k in first)
    w = state["blocks.0.mlp.fc.weight"]
    if quant.startswith("rtn"):  # half a step at most
        assert (again["blocks.0.mlp.fc.weight"] - w).abs().max() <= w.abs().max() / ((1 << (bits - 1)) - 1)
    else:  # the clip search may clip outliers, but never raises the squared error above RTN's
        rtn = decode_state_dict(get_quantizer(f"rtn-int{bits}")(state, PackConfig(), backbone_roles(state)))
        assert (again["blocks.0.mlp.fc.weight"] - w).square().sum() <= (rtn["blocks.0.mlp.fc.weight"] - w).square().sum()


def test_unknown_quantizer_is_a_config_error():
    from pgolf.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown quantizer 'rtn-int7'"):
        get_quantizer("rtn-int7")


@pytest.mark.parametrize("quant", ["int8-rtn", "rtn-int6", "rtn-int5", "gptq-lite-int6"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_integer_layout_decodes_to_the_same_weights(quant, layout):
    torch.manual_seed(2)
    state = {"tok_emb.weight": torch.randn(64, 300), "blocks.0.mlp.fc.weight": torch.randn(300, 280) * 0.02,
             "blocks.0.attn.q_gain": torch.ones(4), "step": torch.tensor(3)}
    tensors = get_quantizer(quant)(state, PackConfig(), backbone_roles(state))
    laid_out = relayout(tensors, layout)
    if layout != "packed":
        assert all(t.encoding not in ("int_per_row_packed",) for t in laid_out)
    blob = encode_artifact(Artifact({}, quant, laid_out, compressor="zlib"))
    after = decode_state_dict(decode_artifact(blob).tensors)
    before = decode_state_dict(tensors)
    assert before.keys() == after.keys()
    for name in before:
        assert torch.equal(before[name], after[name]), name


def test_columns_layout_stores_the_transpose_and_unknown_layouts_are_refused():
    torch.manual_seed(3)
    w = {"blocks.0.mlp.fc.weight": torch.randn(300, 280)}
    (packed,) = get_quantizer("rtn-int6")(w, PackConfig(), backbone_roles(w))
    (cols,) = relayout([packed], "columns")
    (rows,) = relayout([packed], "bytes")
    assert cols.encoding == "int_per_row_t" and cols.parts["q"].shape == (280, 300)
    assert np.array_equal(cols.parts["q"], rows.parts["q"].T) and rows.parts["q"].dtype == np.int8
    with pytest.raises(ConfigError, match="'zigzag' is not valid"):
        relayout([packed], "zigzag")


@pytest.mark.parametrize("quant,extra", [
    ("int8-rtn", []), ("rtn-int6", ["pack.embedding_bits=8"]), ("gptq-lite-int5", ['pack.clip_search="row"']),
    ("gptq-int6", ["pack.gptq_embedding=true", "pack.embedding_bits=7", 'pack.clip_search="sdclip"',
                   "pack.gate_bits=8", "pack.lqer_rank=4", "pack.lqer_top=3", "pack.lqer_group=64"]),
])
def test_the_byte_model_plans_what_pack_stores_group_by_group(tmp_path, tiny_data, quant, extra):
    """Every part stored as it is — floats, scales, int8 gate rows, LQER factors — planned from the
    quantizer's byte model equals what pack stored, per group (the LQER matrices: pack's picks; the
    plan before packing takes the costliest, never fewer bytes)."""
    from pgolf.artifact.estimate import planned_groups
    from pgolf.artifact.pack import pack_run
    from pgolf.job.preset import load_preset
    from pgolf.runtime import Runtime
    from pgolf.train.loop import train
    from tests.conftest import TINY_OVERRIDES

    sets = TINY_OVERRIDES + ["model.model_dim=256", "train.iterations=1", f'pack.quant="{quant}"', *extra,
                             "model.addons.sparse_attn_gate.window=12", "train.gptq_calibration_sequences=2",
                             "train.gptq_calibration_seq_len=16", "train.gptq_reserve_seconds=30"]
    preset = load_preset("cpu-mini", sets)
    train(preset, tiny_data, tmp_path / "run", Runtime(), progress=False)
    r = pack_run(tmp_path / "run", allow_over_budget=True)
    got = r["stored_bytes_per_group"]
    planned = {k: g.as_dict() for k, g in planned_groups(preset, r["lqer_matrices"]).items()}
    assert planned == got
    if preset.pack.gate_bits:
        assert got["gates int8"]["gates"] > 0 and len(r["lqer_matrices"]) == 3
        assert sum(g["lqer"] for g in got.values()) > 0
        upper = planned_groups(preset)  # before packing: the costliest three
        assert sum(g.exact["lqer"] for g in upper.values()) >= sum(g["lqer"] for g in got.values())
