import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgolf.data.shards import HEADER_BYTES, SHARD_MAGIC, list_shards, read_header, read_shard, shard_name, write_shard
from pgolf.errors import PgolfError, ShardError


def test_shard_roundtrip_and_header_layout(tmp_path):
    tokens = np.array([1, 5, 65535, 0, 42], dtype=np.uint16)
    path = tmp_path / shard_name("val", 0)
    write_shard(path, tokens)
    raw = path.read_bytes()
    header = np.frombuffer(raw[:HEADER_BYTES], dtype="<i4")
    assert (header[0], header[1], header[2]) == (SHARD_MAGIC, 1, 5)
    assert not header[3:].any()
    assert len(raw) == HEADER_BYTES + 2 * 5
    assert np.array_equal(read_shard(path), tokens)


def test_shard_names_and_listing_order(tmp_path):
    assert shard_name("train", 7) == "fineweb_train_000007.bin"
    for i in (2, 0, 10):
        write_shard(tmp_path / shard_name("train", i), np.zeros(1, dtype=np.uint16))
    write_shard(tmp_path / shard_name("val", 0), np.zeros(1, dtype=np.uint16))
    assert [p.name for p in list_shards(tmp_path, "train")] == [
        "fineweb_train_000000.bin", "fineweb_train_000002.bin", "fineweb_train_000010.bin"]


def _corrupt(tmp_path, mutate):
    path = tmp_path / "fineweb_val_000000.bin"
    write_shard(path, np.arange(100, dtype=np.uint16))
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(mutate(data)))
    return path


@pytest.mark.parametrize("mutate, problem", [
    (lambda d: d.__setitem__(slice(0, 4), (123).to_bytes(4, "little")) or d, "bad magic"),
    (lambda d: d.__setitem__(slice(4, 8), (2).to_bytes(4, "little")) or d, "unsupported shard version 2"),
    (lambda d: d[:-10], "truncated"),
    (lambda d: d + b"\0\0", "size mismatch"),
    (lambda d: d[:100], "truncated header"),
])
def test_malformed_shard_gives_one_line_error_naming_file(tmp_path, mutate, problem):
    path = _corrupt(tmp_path, mutate)
    with pytest.raises(ShardError) as exc:
        read_shard(path)
    msg = str(exc.value)
    assert str(path) in msg and problem in msg and "\n" not in msg


def test_writer_rejects_ids_that_do_not_fit_uint16(tmp_path):
    with pytest.raises(PgolfError):
        write_shard(tmp_path / "x.bin", np.array([70000]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 65535), max_size=300))
def test_property_any_token_list_roundtrips(tmp_path_factory, tokens):
    path = tmp_path_factory.mktemp("p") / "fineweb_train_000000.bin"
    write_shard(path, np.array(tokens, dtype=np.uint16))
    assert read_shard(path).tolist() == tokens


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2100))
def test_property_random_bytes_never_raise_anything_but_shard_error(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("f") / "fineweb_val_000000.bin"
    path.write_bytes(blob)
    try:
        count = read_header(path)
    except ShardError:
        return
    assert len(blob) == HEADER_BYTES + 2 * count


def test_a_shard_write_cut_off_by_a_full_disk_leaves_no_file_and_one_line(tmp_path):
    """Shards go through pgolf.io: a failing write (here: a file-size limit, as a full disk) raises one
    line and leaves neither the shard nor its temporary file; an earlier shard of that name survives."""
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "fineweb_train_000000.bin"
    write_shard(path, np.arange(10, dtype=np.uint16))
    before = path.read_bytes()
    script = textwrap.dedent(f"""
        import resource, sys, numpy as np
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        from pgolf.data.shards import write_shard
        from pgolf.errors import PgolfError
        try:
            write_shard({str(path)!r}, np.zeros(100_000, dtype=np.uint16))
        except PgolfError as exc:
            print(exc)
            sys.exit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 3 and proc.stdout.count("\n") == 1 and "could not write" in proc.stdout
    assert path.read_bytes() == before and not path.with_name(path.name + ".tmp").exists()
