"""A check's outcome, and the table `pgolf check` prints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

PASS, FLAG, SUSPECT, NA = "pass", "FLAG", "suspect", "n/a"
# FLAG: proven or stated by the evidence against the rules; suspect: a reading, or a practice the
# reviewers accepted that a stricter reading rejects (non-fatal unless --strict); n/a: no evidence


@dataclass
class Result:
    name: str
    status: str
    summary: str
    evidence: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def conclude(name: str, flags: list[str], suspects: list[str], notes: list[str], passed: str) -> Result:
    """A check's row from its findings: the first flag (else the first suspect finding) leads and the
    rest is evidence; without either it passes with `passed`."""
    if flags:
        return Result(name, FLAG, flags[0], flags[1:] + suspects + notes)
    if suspects:
        return Result(name, SUSPECT, suspects[0], suspects[1:] + notes)
    return Result(name, PASS, passed, notes)


def worst(statuses: list[str]) -> str:
    for s in (FLAG, SUSPECT, PASS):
        if s in statuses:
            return s
    return NA


def render(results: list[Result], root: str) -> str:
    width = max(len(r.name) for r in results)
    lines = [f"pgolf check {root}", f"{'check':<{width}}  {'status':<7}  finding", "-" * (width + 60)]
    for r in results:
        lines.append(f"{r.name:<{width}}  {r.status:<7}  {r.summary}")
        lines += [f"{'':<{width}}  {'':<7}    {e}" for e in r.evidence]
    return "\n".join(lines)
