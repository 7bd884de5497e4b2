"""CaseOps on a real corpus: every document's round trip, and the validation sidecar's bytes
against the raw UTF-8 bytes of the validation documents, per document and in total.

    python benchmarks/caseops_check.py CORPUS_DIR CASEOPS_TOKENIZER OUT_DIR

Builds OUT_DIR with `--transform caseops --val-fraction 0.1` (the dev corpus's split: the last 10%
of each input file) and prints the figures.
"""
import sys
import time
from pathlib import Path
import numpy as np
from pgolf.data.build import build_shards, input_files, read_documents, read_manifest
from pgolf.data.shards import list_shards, read_shard
from pgolf.data.sidecar import sidecar_path
from pgolf.data.transforms.caseops import CaseOps

if len(sys.argv) != 4:
    sys.exit(__doc__)
corpus, tok, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
t0 = time.time()
build_shards([corpus], out, tokenizer=tok, val_fraction=0.1, transform="caseops")
print(f"build {time.time()-t0:.0f}s")
m = read_manifest(out)
c = CaseOps()
per_file = [list(read_documents(f)) for f in input_files([corpus])]
docs = [d for ds in per_file for d in ds]
encoded = [c.encode(d) for d in docs]
bad = sum(c.decode(e) != d for d, e in zip(docs, encoded))
changed = sum(e != d for d, e in zip(docs, encoded))
print(f"documents {len(docs):,}; round-trip failures {bad}; documents the transform changes {changed:,}; "
      f"characters {sum(map(len, docs)):,}")
v = m["splits"]["val"]
tokens = np.concatenate([np.asarray(read_shard(s)) for s in list_shards(out, "val")])
counts = np.concatenate([np.asarray(read_shard(sidecar_path(s))) for s in list_shards(out, "val")])
print(f"val tokens {tokens.size:,}; sidecar sum {int(counts.sum()):,}; manifest utf8_bytes {v['utf8_bytes']:,}; "
      f"counted_bytes {v['counted_bytes']:,}; hidden {v.get('hidden_bytes')}")
starts = np.flatnonzero(tokens == 1).tolist() + [tokens.size]
per_doc = [int(counts[a:b].sum()) for a, b in zip(starts, starts[1:])]
print(f"val documents {len(per_doc):,}; bytes/token {counts.sum()/tokens.size:.3f}")
# the build's split: the last 10% of each input file
val_docs = [d for ds in per_file for d in ds[len(ds) - int(round(len(ds) * 0.1)):]]
raw = [len(d.encode("utf-8")) for d in val_docs]
print(f"per-document sidecar == raw UTF-8 bytes of each of the {len(per_doc):,} val documents: {per_doc == raw}; "
      f"raw total {sum(raw):,}")
