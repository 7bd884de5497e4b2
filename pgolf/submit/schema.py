"""JSON Schemas of what pgolf writes for a submission: `submission.json` (the contest's fields plus
per-seed values) and a run's `results.json`. Validated with the `jsonschema` library."""

from __future__ import annotations

import jsonschema

from pgolf.errors import DataError

_NUMBER = {"type": "number"}
_INT = {"type": "integer", "minimum": 0}

SUBMISSION_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "pgolf submission.json (contest fields + per-seed values)",
    "type": "object",
    "required": ["name", "val_bpb", "val_loss", "bytes_total", "bytes_code", "blurb", "author", "github_id",
                 "date", "track", "seeds"],
    "properties": {
        "name": {"type": "string", "minLength": 1}, "val_bpb": _NUMBER, "val_loss": _NUMBER,
        "bytes_total": _INT, "bytes_code": _INT, "blurb": {"type": "string"},
        "author": {"type": "string", "minLength": 1}, "github_id": {"type": "string", "minLength": 1},
        "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        "track": {"enum": ["10min_16mb", "non_record_16mb"]},
        "seeds": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["seed", "val_bpb", "val_loss", "bytes_total"],
            "properties": {"seed": {"type": ["integer", "null"]}, "val_bpb": _NUMBER, "val_loss": _NUMBER,
                           "bytes_total": _INT, "audit": {"type": "string"}}}},
        "significance": {"type": "object"},
    },
}

RESULTS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "pgolf run results.json",
    "type": "object",
    "required": ["preset", "train", "pack", "eval"],
    "properties": {
        "preset": {"type": "string"}, "seed": {"type": ["integer", "null"]},
        "train": {"type": "object", "required": ["steps", "train_time_ms", "val_loss", "val_bpb"]},
        "pack": {"type": "object", "required": ["total_bytes", "code_bytes", "model_bytes"]},
        "eval": {"type": "object", "required": ["val_loss", "val_bpb", "tokens", "bytes", "eval_seconds", "methods"]},
    },
}


def validate(instance: dict, schema: dict, what: str) -> None:
    try:
        jsonschema.validate(instance, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise DataError(f"{what}: {where}: {exc.message}") from None
