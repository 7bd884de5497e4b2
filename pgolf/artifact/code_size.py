"""Code bytes: what the contest counts besides the compressed model — the single submitted
`train_gpt.py`. For a preset that is pgolf's export of it (`pgolf.artifact.export`) in the
preset's code wrapper (`pack.code_wrapper`), byte for byte what `pgolf export` writes and
`pgolf submit` ships. (The exported file replaces this function with its own size.)
"""

from __future__ import annotations

from pgolf.config import Preset


def code_bytes(preset: Preset) -> tuple[int, str]:
    from pgolf.artifact.export import submission_script

    text, wrapper = submission_script(preset)
    return len(text.encode("utf-8")), f"exported train_gpt.py ({wrapper})"
