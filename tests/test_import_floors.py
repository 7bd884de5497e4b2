"""pgolf's packages form floors, and code only imports from its own floor or the floors below.

The order is the direction data flows (docs/architecture.md): shared plumbing at the bottom, then
data -> model -> scoring -> quant -> train -> artifact -> evaluate -> audit -> the whole-run
drivers -> plan/submit -> cli. A function-level (lazy) import counts like a top-level one: a lazy
upward import is still a dependency running the wrong way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pgolf

ROOT = Path(pgolf.__file__).parent

# Each top-level module or package of pgolf, bottom floor first. Modules on one line share a floor.
FLOORS = [
    ["errors"], ["io", "components"], ["runtime"], ["identity", "config", "rundir"], ["registry"],
    ["data"], ["model"], ["quant"], ["train"], ["artifact"], ["evaluate"], ["audit"],
    ["job"], ["plan", "submit", "sweep", "review"], ["cli", "__main__"],
]
FLOOR_OF = {name: i for i, names in enumerate(FLOORS) for name in names}


def top_level(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "pgolf" and len(parts) > 1 else None


def imports_of(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.lineno, node.module)]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return out


def cross_floor_imports() -> tuple[list[str], list[str]]:
    """(upward imports as 'file:line -> module', top-level names missing from FLOORS)."""
    upward, unknown = [], []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        mine = rel.parts[0].removesuffix(".py")
        if mine == "__init__":
            continue
        if mine not in FLOOR_OF:
            unknown.append(str(rel))
            continue
        for line, module in imports_of(path):
            other = top_level(module)
            if other is None or other == mine:
                continue
            if other not in FLOOR_OF:
                unknown.append(f"{rel}:{line} -> {module}")
            elif FLOOR_OF[other] > FLOOR_OF[mine]:
                upward.append(f"{rel}:{line} -> {module}")
    return upward, unknown


def test_every_module_has_a_floor():
    assert cross_floor_imports()[1] == []


def test_no_package_imports_one_above_it():
    assert cross_floor_imports()[0] == []


def test_the_walker_sees_lazy_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from pgolf.cli import main\n")
    assert imports_of(f) == [(2, "pgolf.cli")]


def test_scoring_and_the_audit_do_not_depend_on_the_trainer():
    """evaluate/, audit/ and quant/ get Runtime, writers and validation inputs from the bottom
    floors, never from train/ (they once imported the whole training loop for a 12-line helper)."""
    offenders = []
    for package in ("evaluate", "audit", "quant", "data"):
        base = ROOT / package
        for path in ([base] if base.is_file() else sorted(base.rglob("*.py"))):
            offenders += [f"{path.relative_to(ROOT)}:{line} -> {module}" for line, module in imports_of(path)
                          if module.startswith("pgolf.train")]
    assert offenders == []


def test_the_top_level_holds_only_the_plumbing_and_the_cli():
    """Every stage is a package; the top level keeps the bottom floors and the command line."""
    top = {p.stem for p in ROOT.glob("*.py")} - {"__init__"}
    plumbing = {name for names in FLOORS[:5] for name in names}
    assert top <= plumbing | {"cli", "__main__"}, sorted(top - plumbing)
