"""The 1.0611 record's compression side: per-group coding (rANS + the record's sorted, column-major
byte streams), LQER, int8 gate rows — each lossless or bounded, and decodable by any pgolf."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import backbone_roles
from pgolf.artifact.format import Artifact, decode_artifact, encode_artifact
from pgolf.config import PackConfig, preset_from_dict
from pgolf.errors import ConfigError
from pgolf.quant import ans, pergroup
from pgolf.quant.encoding import EncodedTensor, decode, decode_state_dict
from pgolf.quant.gate_int8 import quantize_gates
from pgolf.quant.layout import relayout
from pgolf.quant.lqer import add_lqer
from pgolf.quant.registry import get_quantizer


def int8_matrices(draw_shape=st.tuples(st.integers(1, 40), st.integers(1, 40))):
    return st.lists(st.tuples(draw_shape, st.integers(0, 2**31 - 1), st.integers(0, 127)), min_size=1, max_size=4)


def _make(spec):
    out = []
    for (rows, cols), seed, spread in spec:
        rng = np.random.default_rng(seed)
        out.append(np.clip(np.round(rng.standard_normal((rows, cols)) * (spread / 8 + 0.1)), -128, 127).astype(np.int8))
    return out


@settings(max_examples=60, deadline=None)
@given(int8_matrices(), st.sampled_from([None, (0, 1), (0, 4), (1, 2), (1, 16)]))
def test_property_ans_group_roundtrips_any_int8_matrices(spec, model):
    matrices = _make(spec)
    axis, classes = model if model else (None, None)
    data = ans.encode_group(matrices, axis, classes)
    back = ans.decode_group(data, [m.shape for m in matrices])
    assert all(np.array_equal(a, b) for a, b in zip(matrices, back))


def _entropy_bytes(x):
    _, c = np.unique(x, return_counts=True)
    p = c / c.sum()
    return float(-(c * np.log2(p)).sum() / 8)


def test_ans_codes_near_order0_entropy_and_below_it_when_columns_differ():
    rng = np.random.default_rng(0)
    alike = [np.clip(np.round(rng.standard_normal((512, 256)) * 2.4), -31, 31).astype(np.int8) for _ in range(2)]
    h0 = _entropy_bytes(np.concatenate([m.reshape(-1) for m in alike]))
    assert len(ans.encode_group(alike)) < 1.01 * h0 + 600  # histograms, class bytes, coder tail
    scaled = [np.clip(np.round(rng.standard_normal((512, 256)) * rng.uniform(0.3, 3, (1, 256)) * 2.4), -31, 31)
              .astype(np.int8) for _ in range(2)]
    h0 = _entropy_bytes(np.concatenate([m.reshape(-1) for m in scaled]))
    axis, classes = ans.choose_model(scaled)
    assert axis == 0 and classes > 1  # the columns' scales are what differs
    assert len(ans.encode_group(scaled)) < 0.97 * h0


def _greedy_tour(m: np.ndarray) -> np.ndarray:
    """The record's sort written plainly: from row 0, always the nearest unvisited row in L1, the
    lowest-numbered of equally near ones."""
    f = m.astype(np.int64)
    used = np.zeros(len(f), dtype=bool)
    tour, cur = [], 0
    for _ in range(len(f)):
        tour.append(cur)
        used[cur] = True
        d = np.abs(f - f[cur]).sum(1).astype(float)
        d[used] = np.inf
        cur = int(np.argmin(d))
    return np.array(tour)


@pytest.mark.parametrize("rows,cols,spread", [(30, 16, 5), (300, 4, 1), (64, 8, 0), (1, 4, 3), (257, 32, 31)])
def test_similarity_order_is_the_greedy_nearest_neighbour_tour_ties_included(rows, cols, spread):
    m = np.random.default_rng(rows).integers(-spread, spread + 1, (rows, cols)).astype(np.int8)
    order = pergroup.similarity_order(m)
    assert sorted(order.tolist()) == list(range(rows)) and order[0] == 0
    assert order.tolist() == _greedy_tour(m).tolist()  # spread 0 and 1: nearly every step a tie


def _quantized_body(layout="bytes"):
    torch.manual_seed(0)
    # above the 65,536 elements kept in float
    state = {"tok_emb.weight": torch.randn(300, 256), "blocks.0.attn.c_q.weight": torch.randn(260, 256),
             "blocks.1.attn.c_q.weight": torch.randn(260, 256), "blocks.0.mlp.fc.weight": torch.randn(512, 256),
             "blocks.1.mlp.fc.weight": torch.randn(512, 256) * 3, "blocks.0.attn_scale": torch.ones(256)}
    cfg = PackConfig(embedding_bits=7)
    tensors = relayout(get_quantizer("rtn-int6")(state, cfg, backbone_roles(state)), layout)
    return state, tensors


@pytest.mark.parametrize("backend", ["ans", "brotli", "lzma"])
@pytest.mark.parametrize("layout", ["bytes", "columns"])
def test_pergroup_is_lossless_on_an_artifact_body_with_every_backend(backend, layout):
    from pgolf.artifact.format import _body

    _, tensors = _quantized_body(layout)
    body = _body(Artifact(preset={"name": "x"}, quant="rtn-int6", tensors=tensors))
    groups = pergroup._code_groups(body)
    assert {k.split("/")[0] for k in groups} == {"tok_emb.weight", "attn.c_q.weight", "mlp.fc.weight"}
    assert len(groups[next(k for k in groups if k.startswith("mlp.fc"))]) == 2  # both layers, one stream
    data = pergroup.pergroup_compress(body, [backend])
    assert pergroup.pergroup_decompress(data) == body


def test_pergroup_picks_the_smallest_backend_and_round_trips_through_the_artifact():
    _, tensors = _quantized_body()
    art = Artifact(preset={"name": "x"}, quant="rtn-int6", tensors=tensors, compressor="pergroup")
    blob = encode_artifact(art)
    back = decode_artifact(blob)
    for a, b in zip(tensors, back.tensors):
        assert all(np.array_equal(a.parts[k], b.parts[k]) for k in a.parts)
    from pgolf.artifact.format import _body

    body = _body(art)
    each = {b: len(pergroup.pergroup_compress(body, [b])) for b in pergroup.available_backends()}
    assert len(pergroup.pergroup_compress(body)) <= min(each.values())


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=3000))
def test_property_pergroup_is_lossless_on_any_bytes(data):
    assert pergroup.pergroup_decompress(pergroup.pergroup_compress(data)) == data


def test_lqer_corrects_the_largest_errors_with_2_and_4_bit_factors():
    state, tensors = _quantized_body()
    plain = {t.name: t for t in tensors}
    err = {n: float((state[n] - decode(t)).norm()) for n, t in plain.items() if n in state and "q" in t.parts}
    corrected, picked = add_lqer(tensors, state, rank=4, top=2, group=64)
    assert list(picked) == sorted(err, key=lambda n: -err[n])[:2]
    for t in corrected:
        if t.name in picked:
            a, b = t.parts["lqer_a"], t.parts["lqer_b"]
            assert a.shape == (state[t.name].shape[0], 4) and b.shape == (4, state[t.name].shape[1])
            assert a.min() >= -2 and a.max() <= 1 and b.min() >= -8 and b.max() <= 7
            assert t.parts["lqer_b_scale"].size == b.size // 64
            assert float((state[t.name] - decode(t)).norm()) < err[t.name]
        else:
            assert "lqer_a" not in t.parts
    # the factors survive every layout and the artifact
    for layout in ("packed", "bytes", "columns"):
        art = Artifact(preset={}, quant="rtn-int6", tensors=relayout(corrected, layout), compressor="pergroup")
        back = decode_state_dict(decode_artifact(encode_artifact(art)).tensors)
        for n in picked:
            torch.testing.assert_close(back[n], decode(next(t for t in corrected if t.name == n)))


def test_lqer_group_falls_back_to_the_row_length_when_64_does_not_divide():
    torch.manual_seed(2)
    state = {"blocks.0.mlp.fc.weight": torch.randn(2300, 30)}
    tensors = get_quantizer("rtn-int6")(state, PackConfig(), backbone_roles(state))
    (t,), _ = add_lqer(tensors, state, rank=4, top=1, group=64)
    assert t.parts["lqer_b_scale"].size == 4  # one scale per row of B (4 x 30 = 120 elements)
    assert t.parts["lqer_a"].shape == (2300, 4)


def test_gate_weights_are_int8_per_head_and_only_those():
    from pgolf.model.roles import gate_tensors, model_on_meta

    preset = preset_from_dict({"model": {"vocab_size": 64, "num_layers": 2, "model_dim": 32, "num_heads": 4,
                                         "num_kv_heads": 2, "addons": {"sparse_attn_gate": {"window": 12}}}})
    names = gate_tensors(model_on_meta(preset.model))
    assert names == {"addons.sparse_attn_gate.weight"}
    torch.manual_seed(3)
    w = torch.randn(2, 4, 12) * 0.3
    state = {"addons.sparse_attn_gate.weight": w, "blocks.0.attn_scale": torch.ones(32)}
    kept = [EncodedTensor(n, tuple(t.shape), "float", {"data": t.half().numpy()}) for n, t in state.items()]
    out = {t.name: t for t in quantize_gates(kept, state, names, 8)}
    gate = out["addons.sparse_attn_gate.weight"]
    assert gate.encoding == "int_per_row" and gate.parts["q"].dtype == np.int8 and gate.parts["scale"].size == 8
    scale = torch.from_numpy(gate.parts["scale"].astype(np.float32))
    assert ((decode(gate) - w).abs().reshape(8, 12) <= scale[:, None] / 2 + 1e-7).all()
    assert out["blocks.0.attn_scale"].encoding == "float"


@pytest.mark.parametrize("setting, message", [("pack.gate_bits=12", "gate_bits"), ("pack.lqer_rank=-1", "lqer"),
                                              ("pack.lqer_group=0", "lqer")])
def test_bad_compression_settings_are_one_line_errors(setting, message):
    from pgolf.job.preset import load_preset

    with pytest.raises(ConfigError, match=message):
        load_preset("record-1855-mini", [setting])


def test_pack_with_fewer_pergroup_backends_bounds_the_full_search_and_decodes_the_same(tiny_data, tmp_path):
    """The dry run's narrowed pack: the same tensors, and never fewer bytes than the full search."""
    from pgolf.artifact.format import read_artifact
    from pgolf.artifact.pack import pack_run
    from pgolf.job.preset import load_preset
    from pgolf.runtime import Runtime
    from pgolf.train.loop import train
    from tests.conftest import TINY_OVERRIDES

    preset = load_preset("cpu-mini", TINY_OVERRIDES + ["model.model_dim=128", "train.iterations=1",
                                                       'pack.compressor="pergroup"', 'pack.layouts=["bytes"]'])
    train(preset, tiny_data, tmp_path / "run", Runtime(), progress=False)
    full = pack_run(tmp_path / "run", out=tmp_path / "full.pgolf", allow_over_budget=True)
    for backends in (["brotli"], ["lzma"]):
        narrow = pack_run(tmp_path / "run", out=tmp_path / "narrow.pgolf", allow_over_budget=True,
                          pergroup_backends=backends)
        assert narrow["pergroup_backends"] == backends and full["pergroup_backends"] is None
        assert narrow["model_bytes"] >= full["model_bytes"]
        a, b = read_artifact(tmp_path / "full.pgolf"), read_artifact(tmp_path / "narrow.pgolf")
        assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
        for x, y in zip(a.tensors, b.tensors):
            assert all(np.array_equal(x.parts[k], y.parts[k]) for k in x.parts)


def test_pack_on_fewer_layouts_bounds_the_full_search(tiny_data, tmp_path):
    from pgolf.artifact.pack import pack_run
    from pgolf.job.preset import load_preset
    from pgolf.runtime import Runtime
    from pgolf.train.loop import train
    from tests.conftest import TINY_OVERRIDES

    preset = load_preset("cpu-mini", TINY_OVERRIDES + ["train.iterations=1", 'pack.layouts=["bytes", "columns"]'])
    train(preset, tiny_data, tmp_path / "run", Runtime(), progress=False)
    full = pack_run(tmp_path / "run", out=tmp_path / "full.pgolf", allow_over_budget=True)
    assert full["layouts_tried"] == ["bytes", "columns"]
    for only in (["bytes"], ["columns"]):
        narrow = pack_run(tmp_path / "run", out=tmp_path / "narrow.pgolf", allow_over_budget=True, only_layouts=only)
        assert narrow["layouts_tried"] == only and narrow["layout"] == only[0]
        assert narrow["model_bytes"] >= full["model_bytes"] == min(full["layout_sizes"].values())
