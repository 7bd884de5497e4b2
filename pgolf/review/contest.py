"""The contest's numbers a review measures against (docs/check.md gives the sources).

The validation split is the first 50,000 documents of the contest's frozen FineWeb list; a
script scores it truncated to whole sequences (`⌊(N−1)/T⌋·T` targets), which the reviewers
accepted; #2014's `EVAL_INCLUDE_TAIL` scored the rest too.
"""

from __future__ import annotations

from pgolf.config import PackConfig
from pgolf.plan.project import CONTEST_EVAL_SECONDS, CONTEST_TRAIN_SECONDS
from pgolf.submit.compare import ALPHA, MARGIN_NATS

# one statement each, made elsewhere
TRAIN_CAP_S, EVAL_CAP_S = CONTEST_TRAIN_SECONDS, CONTEST_EVAL_SECONDS
README_MARGIN_NATS, README_ALPHA = MARGIN_NATS, ALPHA
BUDGET_BYTES = PackConfig().budget_bytes
VAL_DOCS = 50_000
# the published CaseOps data (one Hugging Face dataset) has this many training shards; a log with
# another count was built locally, with a split nobody can check from the log (Issue #2127)
CASEOPS_TRAIN_SHARDS = 80

# scored validation tokens by the contest's tokenizers: truncated to whole sequences, and whole
KNOWN_VAL_TOKENS: dict[str, dict[str, int]] = {
    "sp1024": {"truncated": 62_021_632},
    "sp8192": {"truncated": 40_540_160},
    "sp8192-caseops": {"truncated": 47_851_520, "whole": 47_853_343},
}
# validation bytes per token of the contest split, as the records' own (val_loss, val_bpb) pairs give
# them: bpb = loss / ln 2 / (bytes / token)
KNOWN_TOKENS_PER_BYTE = {"sp1024": 0.4105219, "sp8192-caseops": 47_851_520 / 151_073_604}
# the README's significance rule is pgolf.submit.compare's; the reviewers applied a chronological
# progression at p < 0.25 (PR #1902)
REVIEWERS_ALPHA = 0.25


def tokenizer_family(text: str) -> str | None:
    """Which contest tokenizer a path or a log's settings name, if any."""
    t = text.lower()
    if "caseops" in t or "lossless_caps" in t:
        return "sp8192-caseops"
    for v in ("1024", "8192", "4096"):
        if f"sp{v}" in t or f"_{v}_bpe" in t:
            return f"sp{v}"
    return None
