import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import with_roles
from pgolf.artifact.format import ARTIFACT_MAGIC as MAGIC, Artifact, decode_artifact, encode_artifact, read_artifact
from pgolf.errors import ArtifactError
from pgolf.quant.compress import COMPRESSORS
from pgolf.quant.encoding import decode_state_dict
from pgolf.quant.int8_rtn import quantize_int8_rtn, quantize_per_row


def test_per_row_int8_matches_the_contest_formula():
    torch.manual_seed(0)
    w = torch.randn(8, 300) * torch.tensor([0.01, 0.1, 1, 3, 10, 0.5, 2, 30])[:, None]
    q, scale = quantize_per_row(w)
    clip = torch.quantile(w.abs(), 0.9999984, dim=1)
    ref_scale = (clip / 127).clamp_min(1 / 127)
    ref_q = torch.clamp(torch.round(torch.clamp(w, -clip[:, None], clip[:, None]) / ref_scale[:, None]), -127, 127)
    torch.testing.assert_close(scale.float(), ref_scale.half().float())
    assert torch.equal(q.float(), ref_q)
    # Rows with a clip below 1 use the absolute floor step 1/127, as the contest code does.
    assert scale[0].item() == pytest.approx(1 / 127, rel=1e-3)


def test_int8_rtn_policy_per_tensor_kind():
    state = {
        "tok_emb.weight": torch.randn(300, 256),
        "blocks.0.attn_scale": torch.randn(256),
        "blocks.0.small.weight": torch.randn(10, 10),
        "steps": torch.tensor([3], dtype=torch.int64),
        "big3d": torch.randn(50, 40, 40),
    }
    enc = {t.name: t for t in quantize_int8_rtn(*with_roles(state))}
    assert enc["tok_emb.weight"].encoding == "int_per_row"
    assert enc["blocks.0.attn_scale"].parts["data"].dtype == np.float32  # control -> fp32
    assert enc["blocks.0.small.weight"].parts["data"].dtype == np.float16  # small -> fp16
    assert enc["steps"].encoding == "raw"
    assert enc["big3d"].encoding == "int_per_tensor"
    out = decode_state_dict(list(enc.values()))
    assert torch.equal(out["steps"], state["steps"])
    assert torch.equal(out["blocks.0.attn_scale"], state["blocks.0.attn_scale"])
    err = (out["tok_emb.weight"] - state["tok_emb.weight"]).abs().max()
    assert err <= 0.5 * out["tok_emb.weight"].abs().max() / 127 + 1e-3


@pytest.mark.parametrize("compressor", ["zlib", "lzma", "zstd", "brotli", "pergroup"])
def test_artifact_roundtrip_is_exact_for_every_compressor(compressor):
    torch.manual_seed(0)
    tensors = quantize_int8_rtn(*with_roles({"a.weight": torch.randn(70, 1000), "b": torch.randn(5)}))
    art = Artifact(preset={"name": "x"}, quant="int8-rtn", tensors=tensors, compressor=compressor,
                   meta={"calibration": "none"})
    back = decode_artifact(encode_artifact(art))
    assert back.preset == {"name": "x"} and back.meta == {"calibration": "none"} and back.compressor == compressor
    for a, b in zip(tensors, back.tensors):
        assert a.name == b.name and a.shape == b.shape and a.encoding == b.encoding
        for k in a.parts:
            assert np.array_equal(a.parts[k], b.parts[k])


@pytest.fixture(scope="module")
def blob():
    tensors = quantize_int8_rtn(*with_roles({"w": torch.randn(300, 300)}))
    return encode_artifact(Artifact(preset={}, quant="int8-rtn", tensors=tensors))


def test_bad_magic_version_checksum_and_truncation_are_one_line_errors(blob):
    cases = {
        "bad magic": b"NOTPGOLF" + blob[8:],
        "format version 9": blob[:8] + (9).to_bytes(2, "little") + blob[10:],
        "checksum mismatch": blob[:-1] + bytes([blob[-1] ^ 1]),
        "truncated": blob[:5],
    }
    for problem, data in cases.items():
        with pytest.raises(ArtifactError, match=problem) as exc:
            decode_artifact(data, "f.pgolf")
        assert "\n" not in str(exc.value) and "f.pgolf" in str(exc.value)
    with pytest.raises(ArtifactError, match="checksum"):
        decode_artifact(blob[: len(blob) // 2])


class _Boom:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_a_pickle_payload_is_refused_without_being_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = pickle.dumps({"w": _Boom()})
    for data in (evil, MAGIC + evil):
        path = tmp_path / "evil.pgolf"
        path.write_bytes(data)
        with pytest.raises(ArtifactError):
            read_artifact(path)
    assert not (tmp_path / "PWNED").exists()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_property_random_bytes_only_raise_artifact_error(data):
    try:
        decode_artifact(MAGIC + data)
    except ArtifactError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_property_mutated_artifacts_only_raise_artifact_error(blob, data):
    i = data.draw(st.integers(0, len(blob) - 1))
    mutated = blob[:i] + bytes([blob[i] ^ data.draw(st.integers(1, 255))]) + blob[i + 1 :]
    with pytest.raises(ArtifactError):
        decode_artifact(mutated)


def test_compressors_registry_has_the_five():
    assert set(COMPRESSORS.names()) == {"zlib", "lzma", "zstd", "brotli", "pergroup"}
