"""Train/validation overlap: proven on the data when it is given, read from the logs' fingerprints
otherwise.

With `--data DIR`, every validation document of DIR is fingerprinted and DIR's training shards are
scanned (pgolf.data.overlap); documents found are counted with their first training position.
A few documents of any real corpus share text with training (repeated boilerplate, quoted
passages: 2.9 % of the dev corpus's validation documents before pgolf's build leaves them out), so
the flag is raised above `--max-overlap` (default 1 % of the validation documents) and every find
is reported either way. The logs' fingerprints: `train_shards` (the published CaseOps data has 80;
#2130's 1499 came from a local build with 10,000 validation documents) and the validation document
and token counts, against the contest's 50,000-document split when the logs name a contest tokenizer.
"""

from __future__ import annotations

from pgolf.review.contest import CASEOPS_TRAIN_SHARDS, KNOWN_VAL_TOKENS, VAL_DOCS
from pgolf.review.evidence import Evidence, contest_family
from pgolf.review.result import FLAG, NA, PASS, Result

NAME = "train/val overlap"
MAX_OVERLAP = 0.01


def fingerprints(ev: Evidence) -> tuple[list[str], list[str]]:
    """(flags, notes) from what the logs say about the data."""
    flags, notes = [], []
    family = contest_family(ev)
    known = KNOWN_VAL_TOKENS.get(family or "", {})
    for log in ev.logs:
        shards, docs, tokens = log.first("train_shards"), log.first("val_docs"), log.first("val_tokens")
        if shards is not None:
            if family == "sp8192-caseops" and shards.value != CASEOPS_TRAIN_SHARDS:
                flags.append(f"{shards.where(log)}: train_shards {shards.value}, the published CaseOps data has "
                             f"{CASEOPS_TRAIN_SHARDS}: a local build, whose validation split the log cannot show "
                             "(Issue #2127: 1499 shards = documents 10,000-49,999 of validation in training)")
            else:
                notes.append(f"{shards.where(log)}: train_shards {shards.value}")
        if docs is not None:
            if family and docs.value != VAL_DOCS:
                flags.append(f"{docs.where(log)}: {docs.value:,} validation documents, the contest's split has {VAL_DOCS:,}")
            else:
                notes.append(f"{docs.where(log)}: {docs.value:,} validation documents")
        if tokens is not None and known:
            if tokens.value not in known.values():
                flags.append(f"{tokens.where(log)}: val_tokens {tokens.value:,}, the contest's {family} split has "
                             + " or ".join(f"{v:,} ({k})" for k, v in known.items()))
            else:
                notes.append(f"{tokens.where(log)}: val_tokens {tokens.value:,} = the contest's {family} split")
    if not family and ev.logs:
        notes.append("the logs name no contest tokenizer: not compared with the contest's 50,000-document split")
    return flags, notes


def check(ev: Evidence, options: dict) -> Result:
    flags, notes = fingerprints(ev)
    data = options.get("data")
    proven = ""
    if data is not None:
        from pgolf.data.overlap import scan_data_dir

        scan = scan_data_dir(data)
        found = scan.found
        share = found.size / max(scan.val_docs, 1)
        proven = (f"scanned {scan.train_tokens:,} training tokens for {scan.val_docs:,} validation documents in "
                  f"{scan.seconds:.1f} s: {found.size:,} found ({100 * share:.2f} %)")
        for d in found[:5]:
            notes.append(f"validation document {d} (from token {int(scan.doc_starts[d]):,} of validation): "
                         f"{100 * scan.overlap.share[d]:.0f} % of its fingerprints in training, at "
                         f"{scan.position(int(scan.overlap.located[d]))}")
        if found.size > 5:
            notes.append(f"... and {found.size - 5:,} more")
        for log in ev.logs:  # the data given must be the data the run used
            tokens = log.first("val_tokens")
            if tokens is not None and log.dialect == "pgolf" and tokens.value != scan.val_tokens - 1:
                flags.append(f"{tokens.where(log)}: the run scored a {tokens.value + 1:,}-token validation split, "
                             f"--data holds {scan.val_tokens:,}: not the run's data, so the scan proves nothing of it")
        max_share = options.get("max_overlap", MAX_OVERLAP)
        if share > max_share:
            flags.insert(0, proven + f", above {100 * max_share:g} % of the split")
    if flags:
        return Result(NAME, FLAG, flags[0], flags[1:] + ([proven] if proven and proven not in flags[0] else []) + notes)
    if proven:
        return Result(NAME, PASS, proven, notes)
    if any("contest's" in n and "=" in n for n in notes):
        return Result(NAME, PASS, "the logs' data fingerprints match the contest's split (not proven: no --data)", notes)
    return Result(NAME, NA, "no --data to scan and no contest data fingerprints in the logs", notes)

