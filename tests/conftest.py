"""Shared fixtures: small corpora, a trained tiny tokenizer and shards, all made on the fly so the
suite needs no network and no data files from outside the repository."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from pgolf.data.corpus import pydoc_documents

TINY_VOCAB = 256
MAX_WORKERS = 4  # `-n auto`: a full-shape dry run holds a few GiB, so not one worker per core of a big machine


def pytest_xdist_auto_num_workers(config) -> int:
    from pgolf.runtime import usable_cpus

    return max(1, min(usable_cpus(), MAX_WORKERS))


def pytest_configure(config) -> None:
    """Under pytest-xdist each worker gets its share of the cores (its children inherit it through
    OMP_NUM_THREADS): two workers of two threads each on two cores made the full-shape dry runs
    several times slower (threads waiting on each other's barriers), far more than one thread costs."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        import torch

        from pgolf.runtime import usable_cpus

        threads = max(1, usable_cpus() // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items) -> None:
    """The full-shape dry runs first, costliest first: handed out one at a time to the workers as
    they free up (`--dist load --maxschedchunk 1`), they run side by side while the short tests
    fill the gaps, instead of one worker left alone with them at the end."""
    def cost(item) -> int:
        if not item.nodeid.startswith("tests/test_dry_run.py"):
            return 0 if item.get_closest_marker("slow") is None else 1
        return 2 + DRY_RUN_COST.get(getattr(item, "callspec", None) and item.callspec.params.get("name"), 0)

    items.sort(key=lambda item: -cost(item))  # stable: otherwise the files' own order
    # xdist starts each worker on two consecutive tests: the two costliest dry runs on two workers
    dry = [i for i, item in enumerate(items) if cost(item) > 1]
    if len(dry) >= 3:
        items[dry[1]], items[dry[2]] = items[dry[2]], items[dry[1]]


# Relative cost of a preset's dry run (its share of the suite's longest tests).
DRY_RUN_COST = {"record-1855": 9, "record-2135": 8, "seed-1207-hydra": 6, "seed-1150-ttt-slot": 6, "record-549": 5,
                "seed-700-hedge-crownq": 5, "seed-1488-slot24": 4, "seed-731-hedge": 4, "naive-baseline": 1}


TINY_OVERRIDES = [
    f"model.vocab_size={TINY_VOCAB}", "model.num_layers=2", "model.model_dim=64",
    "model.num_heads=4", "model.num_kv_heads=2",
    "train.seq_len=64", "train.tokens_per_step=512", "train.grad_accum=2",
    "train.iterations=6", "train.max_wallclock_seconds=0", "train.warmup_steps=0",
    "train.warmdown_iters=3", "train.warmdown_fraction=0.0",
    "train.muon_momentum_warmup_steps=3", "train.val_every=0", "train.train_log_every=1",
    "train.val_tokens_limit=2048", "train.compile=\"off\"",
    "eval.seq_len=64", "eval.batch_tokens=1024",
    # pinned, so that tuning cpu-mini's schedule and learning rates leaves the suite (and its golden
    # losses) unchanged
    "train.matrix_lr=0.04", "train.scalar_lr=0.04", "train.tied_embed_lr=0.05",
    "train.muon_momentum_warmup_fraction=0.0",
]


def write_jsonl(path: Path, docs: list[str]) -> Path:
    from pgolf.data.corpus import write_documents

    return write_documents(path, docs)


@pytest.fixture(scope="session")
def corpus_docs() -> list[str]:
    docs = pydoc_documents(target_chars=1500)[:120]
    rng = random.Random(0)
    # Sprinkle characters that a small tokenizer without byte fallback cannot cover.
    rare = ["é", "ß", "→", "€", "ﬁ", "①"]
    out = []
    for d in docs:
        words = d.split(" ")
        for _ in range(3):
            i = rng.randrange(len(words))
            words[i] = words[i] + rng.choice(rare)
        out.append(" ".join(words))
    return out


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory, corpus_docs) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "docs.jsonl", corpus_docs)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, corpus_file) -> Path:
    """Shards + tokenizer (vocab 256, no byte fallback) from the tiny corpus; last 10% is val."""
    from pgolf.data.build import build_shards

    out = tmp_path_factory.mktemp("data")
    build_shards([corpus_file], out, vocab_size=TINY_VOCAB, byte_fallback=False, val_fraction=0.1,
                 progress=False)
    return out


@pytest.fixture(scope="session")
def data_1024(tmp_path_factory):
    """The embedded corpus with a 1,024-piece tokenizer: the contest presets' vocab."""
    from pgolf.data.corpus import build_default_shards

    return build_default_shards(tmp_path_factory.mktemp("data1024"), 1024, progress=False, max_chars=1_000_000)


@pytest.fixture(scope="session")
def data_8192(tmp_path_factory):
    """The embedded corpus cut into ~300-character documents, with an 8,192-piece tokenizer (the
    1.0611 preset's vocab). Short documents, so the audit's 1,024-token window holds the several
    document boundaries phased TTT needs to adapt more than once in it."""
    from pgolf.data.build import build_shards
    from pgolf.data.corpus import default_documents, write_documents

    work = tmp_path_factory.mktemp("dry8192")
    docs = [d[i:i + 300] for d in default_documents(max_chars=1_000_000) for i in range(0, len(d), 300)]
    corpus = write_documents(work / "corpus.jsonl", [d for d in docs if d.strip()])
    build_shards([corpus], work / "data", vocab_size=8192, val_fraction=0.1, progress=False)
    return work / "data"


@pytest.fixture
def tiny_preset():
    from pgolf.job.preset import load_preset

    def make(extra: list[str] | None = None):
        return load_preset("cpu-mini", TINY_OVERRIDES + list(extra or []))

    return make


def backbone_roles(state: dict) -> dict[str, str]:
    """Parameter roles for a hand-made state dict whose names follow the backbone's."""
    from pgolf.model.roles import backbone_role

    return {name: backbone_role(name, t.ndim) for name, t in state.items()}


def with_roles(state: dict) -> tuple:
    """(state, default pack settings, roles): the arguments of a quantizer."""
    return state, None, backbone_roles(state)
