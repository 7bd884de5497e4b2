"""`pgolf data fetch`: download the contest's FineWeb export from the Hugging Face hub.

Layout of the dataset repo `willdepueoai/parameter-golf` (repo type "dataset"):
    datasets/fineweb10B_sp1024/fineweb_{train,val}_NNNNNN.bin
    datasets/fineweb10B_sp8192/...
    datasets/tokenizers/fineweb_1024_bpe.model (+ .vocab), fineweb_8192_bpe.model, ...
    datasets/docs_selected.jsonl (+ docs_selected.source_manifest.json): the selected documents
        as text (~45 GiB, the first 50,000 are validation), from which every export was tokenized
All validation shards are fetched, plus a prefix of `train_shards` training shards of the frozen
shuffled order (the contest's `--train-shards N`), and with `with_docs` the documents — what a
transform such as CaseOps needs (`pgolf data build DOCS --transform caseops --val-docs 50000`).
Files already complete are skipped and partial downloads resume (huggingface_hub keeps
`.incomplete` files), so re-running is cheap.

The hub is reached through a small `Hub` interface so tests can point it at a local stand-in.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from pgolf.errors import DataError

REPO_ID = "willdepueoai/parameter-golf"
VARIANTS = {"sp1024": 1024, "sp8192": 8192}
_SHARD = re.compile(r"fineweb_(train|val)_(\d{6})\.bin$")
DOCS = "datasets/docs_selected.jsonl"
DOCS_MANIFEST = "datasets/docs_selected.source_manifest.json"


class Hub(Protocol):
    def list_files(self) -> list[str]: ...

    def download(self, filename: str, local_dir: Path) -> Path: ...


class HuggingFaceHub:
    """The real hub, through huggingface_hub (resumable, cached by file)."""

    def __init__(self, repo_id: str = REPO_ID, revision: str | None = None) -> None:
        self.repo_id, self.revision = repo_id, revision

    def list_files(self) -> list[str]:
        from huggingface_hub import HfApi

        return HfApi().list_repo_files(self.repo_id, repo_type="dataset", revision=self.revision)

    def download(self, filename: str, local_dir: Path) -> Path:
        from huggingface_hub import hf_hub_download

        return Path(
            hf_hub_download(self.repo_id, filename, repo_type="dataset", revision=self.revision,
                            local_dir=str(local_dir))
        )


class LocalHub:
    """A directory laid out like the dataset repo; a stand-in for tests and mirrors."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def list_files(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())

    def download(self, filename: str, local_dir: Path) -> Path:
        """Copied under a temporary name and renamed, as the hub's own client does: a copy cut off
        leaves no partial file under the final name."""
        from pgolf.io import atomic_write

        dest = local_dir / filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(self.root / filename, "rb") as src:
            atomic_write(dest, lambda f: shutil.copyfileobj(src, f))
        return dest


@dataclass
class FetchPlan:
    variant: str
    shards_dir: str
    val: list[str]
    train: list[str]
    tokenizer: list[str]
    docs: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        # the documents last: the shards a run needs are usable while the 45 GiB of text arrives
        return self.tokenizer + self.val + self.train + self.docs


def plan_fetch(all_files: list[str], variant: str = "sp1024", train_shards: int = 80,
               with_docs: bool = False) -> FetchPlan:
    """Choose which repo files to download for a variant, a number of training shards and,
    with `with_docs`, the documents' text and its manifest."""
    if variant not in VARIANTS:
        raise DataError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if train_shards < 0:
        raise DataError(f"--train-shards must be >= 0, got {train_shards}")
    shards_dir = f"datasets/fineweb10B_{variant}"
    shards: dict[str, list[tuple[int, str]]] = {"train": [], "val": []}
    for name in all_files:
        if not name.startswith(shards_dir + "/"):
            continue
        m = _SHARD.search(name)
        if m:
            shards[m.group(1)].append((int(m.group(2)), name))
    if not shards["val"]:
        raise DataError(f"{shards_dir}: no validation shards in the dataset repo")
    train = [n for _, n in sorted(shards["train"])]
    if train_shards > len(train):
        raise DataError(f"--train-shards {train_shards} asked, but the repo has {len(train)}")
    vocab = VARIANTS[variant]
    tok = [f for f in all_files if f.startswith(f"datasets/tokenizers/fineweb_{vocab}_bpe.")]
    docs = []
    if with_docs:
        docs = [f for f in (DOCS_MANIFEST, DOCS) if f in all_files]
        if DOCS not in docs:
            raise DataError(f"--with-docs: the dataset repo has no {DOCS}")
    return FetchPlan(variant, shards_dir, [n for _, n in sorted(shards["val"])], train[:train_shards], sorted(tok),
                     docs)


def fetch(out_dir: str | Path, variant: str = "sp1024", train_shards: int = 80,
          hub: Hub | None = None, progress: bool | None = None, with_docs: bool = False) -> dict:
    """Download a variant into `out_dir`, keeping the repo layout (`out_dir/datasets/...`)."""
    hub = hub or HuggingFaceHub()
    out_dir = Path(out_dir)
    try:
        plan = plan_fetch(hub.list_files(), variant, train_shards, with_docs)
    except DataError:
        raise
    except Exception as exc:  # network errors come in many types (httpx, OSError, hub errors)
        raise DataError(
            f"cannot list {REPO_ID} on the Hugging Face hub ({type(exc).__name__}: {exc}); "
            "are you offline? Set HF_ENDPOINT for a mirror, or build shards locally with "
            "`pgolf data build`"
        ) from None
    fetched, skipped = [], []
    for name in tqdm(plan.files, unit="file", desc="fetch", disable=progress is False):
        dest = out_dir / name
        if dest.is_file() and name.endswith(".bin") and _complete_shard(dest):
            skipped.append(name)
            continue
        try:
            hub.download(name, out_dir)
        except Exception as exc:
            raise DataError(
                f"download of {name} failed ({type(exc).__name__}: {exc}); re-run to resume"
            ) from None
        fetched.append(name)
    tokenizer = next((out_dir / f for f in plan.tokenizer if f.endswith(".model")), None)
    out = {
        "variant": variant,
        "data_dir": str(out_dir / plan.shards_dir),
        "tokenizer": str(tokenizer) if tokenizer else None,
        "val_shards": len(plan.val),
        "train_shards": len(plan.train),
        "fetched": len(fetched),
        "skipped_complete": len(skipped),
    }
    if plan.docs:
        out["docs"] = str(out_dir / DOCS)
        out["docs_val"] = _docs_val(out_dir / DOCS_MANIFEST)
    return out


def _docs_val(manifest: Path) -> int | None:
    """How many leading documents are validation, as the documents' manifest says (None: unknown)."""
    if not manifest.is_file():
        return None
    meta = json.loads(manifest.read_text())
    value = meta.get("docs_val", meta.get("num_val_docs"))
    return int(value) if value is not None else None


def _complete_shard(path: Path) -> bool:
    from pgolf.data.shards import read_header
    from pgolf.errors import ShardError

    try:
        read_header(path)
        return True
    except ShardError:
        return False
