"""What a training/evaluation log says, with the line it says it on.

Three dialects are read: the contest's own `train_gpt.py` (and the records forked from it, e.g.
#1855: a `Hyperparameters:` block, `train_shards:`, `val_tokens:`, `stopping_early: … train_time:`,
`… val_loss:… val_bpb:… eval_time:…ms`, `total_eval_time:`, `GPTQ:collected … in Ns`, `Total
submission size …: N bytes`), and pgolf's `train.log` (`hyperparameters:` block, `val_loader tokens:`,
`train_shards:… val_docs:…`, `final … train_time:`, `pack …`, `eval_start …`/`eval …` with a wall
`time:` stamp). A fact the log does not state is absent, never guessed.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Fact:
    value: float | int | str
    line: int  # 1-based
    text: str = ""

    def where(self, log: "Log") -> str:
        return f"{log.path.name}:{self.line}"


def _num(text: str) -> float | int:
    return int(text) if re.fullmatch(r"-?\d+", text) else float(text)


# name -> (pattern, group holding the value: 0 = the first group that matched, or the match); every
# match is kept, in order
PATTERNS: dict[str, tuple[re.Pattern, int]] = {
    "train_shards": (re.compile(r"\btrain_shards:\s*(\d+)"), 1),
    "val_tokens": (re.compile(r"^(?:val_tokens:\s*|val_loader\b.*\btokens:)(\d+)"), 1),
    "val_docs": (re.compile(r"\b(?:total_docs|val_docs):(\d+)"), 1),
    "model_params": (re.compile(r"\bmodel_params:\s*(\d+)"), 1),
    # every training-timer reading in ms (the contest logs train_time in ms at validation steps
    # and at the stop; #1855's per-step lines use minutes and are not read)
    "train_time_ms": (re.compile(r"\btrain_time:\s*(\d+(?:\.\d+)?)ms"), 1),
    "wallclock_stop": (re.compile(r"stopping_early: wallclock_cap train_time:\s*(\d+)ms"), 1),
    "calibration_over_cap": (re.compile(r"\bwithin_cap:False\b"), 0),  # pgolf's in-cap calibration, late
    "calibration_after_stop_s": (re.compile(r"GPTQ:collected \d+ Hessians in (\d+(?:\.\d+)?)s"), 1),
    "serialize_s": (re.compile(r"(?<!de)compression done in (\d+(?:\.\d+)?)s"), 1),
    "decompress_s": (re.compile(r"decompression done in (\d+(?:\.\d+)?)s"), 1),
    "compile_warmup_s": (re.compile(r"compile warmup done \((\d+(?:\.\d+)?)s\)"), 1),
    "warmup_source": (re.compile(r"warming up compile \(([^)]*)\)"), 1),
    "total_eval_s": (re.compile(r"^total_eval_time:(\d+(?:\.\d+)?)s"), 1),
    "submission_bytes": (re.compile(r"^Total submission size[^:]*:\s*(\d+) bytes"), 1),
    "model_bytes": (re.compile(r"^Serialized model [^:]*:\s*(\d+) bytes|^pack .*\bmodel_bytes:(\d+)"), 0),
    "code_bytes_counted": (re.compile(r"^Code size \(compressed\):\s*(\d+) bytes|^pack .*\bcode_bytes:(\d+)"), 0),
    "code_bytes_raw": (re.compile(r"^Code size \(uncompressed\):\s*(\d+) bytes"), 1),
    "pack_total_bytes": (re.compile(r"^pack .*\btotal_bytes:(\d+)"), 1),
    "eval_start": (re.compile(r"^(?:beginning .*eval timer|eval_start\b)"), 0),
    "code_identity": (re.compile(r"^code (pgolf:\S+ (?:git_commit|script_sha256):\S+)"), 1),
}

# a scored result: contest `NAME val_loss:X val_bpb:Y eval_time:Zms`, pgolf `eval methods:M val_loss:… tokens:…`
SCORE = re.compile(r"^(?:(?P<name>[A-Za-z_][\w-]*) |eval methods:(?P<methods>\S+) )"
                   r"val_loss:\s*(?P<loss>[\d.]+) val_bpb:\s*(?P<bpb>[\d.]+)(?P<rest>.*)$")
STAMP = re.compile(r"(?:^\[?|\btime:)(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?Z?)")
HYPER_HEAD = re.compile(r"^(Hyperparameters|hyperparameters):\s*$")
HYPER_LINE = re.compile(r"^\s+([\w.\-\[\]]+):\s?(.*)$")


@dataclass
class Score:
    name: str  # the contest's result label (e.g. quantized_ttt_phased) or pgolf's methods
    val_loss: float
    val_bpb: float
    line: int
    eval_ms: float | None = None
    tokens: int | None = None
    bytes: int | None = None
    stamp: dt.datetime | None = None
    legal: bool = True  # pgolf's eval lines say whether the methods are legal by design
    evaluation: bool = True  # False: a training-time validation (pgolf's `final …` line)


@dataclass
class Log:
    path: Path
    lines: list[str]
    facts: dict[str, list[Fact]] = field(default_factory=dict)
    hyperparameters: dict[str, Fact] = field(default_factory=dict)
    scores: list[Score] = field(default_factory=list)
    stamps: list[tuple[int, dt.datetime]] = field(default_factory=list)

    @classmethod
    def read(cls, path: str | Path) -> "Log":
        path = Path(path)
        log = cls(path, path.read_text(encoding="utf-8", errors="replace").splitlines())
        log._parse()
        return log

    @property
    def dialect(self) -> str:
        return "pgolf" if self.first("code_identity") is not None else "contest"

    def first(self, name: str) -> Fact | None:
        found = self.facts.get(name)
        return found[0] if found else None

    def last(self, name: str) -> Fact | None:
        found = self.facts.get(name)
        return found[-1] if found else None

    def all(self, name: str) -> list[Fact]:
        return self.facts.get(name, [])

    @property
    def final_score(self) -> Score | None:
        """The submitted number: the last scored result that is not a diagnostic or a step's
        validation (the contest's scripts print diagnostics first and the submitted score last)."""
        kept = [s for s in self.scores if s.evaluation and s.legal and not s.name.startswith("diagnostic")]
        return kept[-1] if kept else None

    def stamp_at(self, line: int, after: bool) -> dt.datetime | None:
        """The wall-clock stamp nearest to `line`: the first at or after it, or the last at or before."""
        cands = [(n, t) for n, t in self.stamps if (n >= line if after else n <= line)]
        if not cands:
            return None
        return cands[0][1] if after else cands[-1][1]

    def _parse(self) -> None:
        in_hyper = False
        for n, text in enumerate(self.lines, 1):
            if HYPER_HEAD.match(text):
                in_hyper = True
                continue
            if in_hyper:
                m = HYPER_LINE.match(text)
                if m:
                    self.hyperparameters[m.group(1)] = Fact(m.group(2).strip(), n, text)
                    continue
                else:
                    in_hyper = False
            for name, (pattern, group) in PATTERNS.items():
                m = pattern.search(text)
                if m:
                    raw = m.group(group) if group else next((g for g in m.groups() if g is not None), m.group(0))
                    value = _num(raw) if re.fullmatch(r"-?\d+(?:\.\d+)?", raw or "") else raw
                    self.facts.setdefault(name, []).append(Fact(value, n, text))
            s = STAMP.search(text)
            if s:
                self.stamps.append((n, _parse_stamp(s.group(1))))
            m = SCORE.match(text)
            if m:
                rest = m.group("rest")
                field_of = lambda key: re.search(rf"\b{key}:(\d+(?:\.\d+)?)", rest)  # noqa: E731
                ms, tok, byt = field_of("eval_time"), field_of("tokens"), field_of("bytes")
                pgolf_eval = m.group("methods") is not None
                self.scores.append(Score(m.group("name") or m.group("methods"), float(m.group("loss")),
                                         float(m.group("bpb")), n, float(ms.group(1)) if ms else None,
                                         int(tok.group(1)) if tok else None, int(byt.group(1)) if byt else None,
                                         _parse_stamp(s.group(1)) if s else None,
                                         legal="legal_by_design:False" not in rest,
                                         evaluation=pgolf_eval or m.group("name") != "final"))


def _parse_stamp(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


# settings that differ between the seeds of one configuration by construction
PER_SEED_KEYS = re.compile(r"(^|\.)(seed|run_id|logfile|log_file|rank|local_rank|out|run_dir|description)$")


def configuration(log: Log) -> dict[str, str]:
    """The settings a log states, less the ones that name the seed or the run."""
    return {k: f.value for k, f in log.hyperparameters.items() if not PER_SEED_KEYS.search(k)}


def seed_of(log: Log) -> int | None:
    for key in ("seed", "train.seed"):
        f = log.hyperparameters.get(key)
        if f is not None and re.fullmatch(r"-?\d+", str(f.value)):
            return int(f.value)
    m = re.search(r"seed[_-]?(\d+)", log.path.stem)
    return int(m.group(1)) if m else None
