"""One line for an audit verdict, as every report prints it."""

from __future__ import annotations


def verdict_line(entry: dict) -> str:
    """'pass', or 'flagged (check, check)' for a dict with `verdict` and `flagged`."""
    return entry["verdict"] + (f" ({', '.join(entry['flagged'])})" if entry["flagged"] else "")
