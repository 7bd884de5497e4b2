"""`pgolf export PRESET --out train_gpt.py`: the single self-contained file a participant submits.

The file is an amalgamation of pgolf's own modules — the same code that trains, packs and scores
here, so its numbers are pgolf's — restricted to what the preset uses (its add-ons, legal eval methods and quantizer; every
compressor is small and shared), with:
- every `import pgolf…` / `from pgolf… import …` statement removed (all names then live in one
  namespace; a top-level name defined twice with different code is an error, not a silent
  override);
- modules ordered so each comes after the modules it imports at top level;
- the preset embedded as JSON, and a `main` that trains (under torchrun too), packs with the
  preset's quantizer, and scores the round-tripped artifact, printing the contest's final line.
It imports torch, numpy, sentencepiece, safetensors and the compressors only. Its UTF-8 size is
the code term of the budget; `minify` (python-minifier, if installed) and `lzma_wrap` (a
self-extracting lzma stub) shrink it, each reported in bytes.
"""

from __future__ import annotations

import ast
import base64
import functools
import json
import lzma
import re
import sys
from pathlib import Path

import pgolf
from pgolf.components import MODULES, legal_methods, module_file
from pgolf.config import Preset, preset_from_dict
from pgolf.errors import PgolfError
from pgolf.quant.compress import ALSO_USES, PACKAGE_OF

ROOT = Path(pgolf.__file__).parent
# Entry modules of the exported program; everything they import from pgolf comes along.
ENTRY_MODULES = ("train/loop.py", "artifact/pack.py", "evaluate/artifact_eval.py", "runtime.py")
# Never exported: CLI, data building and fetching, reports (not part of a submission).
EXCLUDED = {"cli.py", "job/run.py", "job/dryrun.py", "__main__.py", "data/fetch.py", "data/stats.py", "data/corpus.py",
            "artifact/estimate.py", "artifact/export.py", "artifact/code_size.py"}
# Modules only a given compressor calls (lazily): shipped only when the preset packs with it, so a
# submission neither carries their code nor lists their libraries otherwise.
COMPRESSOR_MODULES = {"quant/pergroup.py": "pergroup", "quant/ans.py": "pergroup"}

MAIN = '''
# ---------------------------------------------------------------------------- entry point
PRESET = json.loads(PRESET_JSON)
VOCAB = PRESET["model"]["vocab_size"]
# The contest runs a record as `torchrun --standalone --nproc_per_node=8 train_gpt.py` with these
# environment variables and defaults; flags still win.
DEFAULT_DATA = os.environ.get("DATA_PATH", f"./data/datasets/fineweb10B_sp{VOCAB}")
DEFAULT_TOKENIZER = os.environ.get("TOKENIZER_PATH", f"./data/tokenizers/fineweb_{VOCAB}_bpe.model")


def code_bytes(preset=None):
    return len(Path(__file__).read_bytes()), "this file"


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description="pgolf export of preset " + PRESET["name"])
    ap.add_argument("--data", default=DEFAULT_DATA, help="shard directory (env DATA_PATH)")
    ap.add_argument("--tokenizer", default=DEFAULT_TOKENIZER, help="SentencePiece .model (env TOKENIZER_PATH)")
    ap.add_argument("--out", default="run", help="run directory")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    runtime = init_runtime(args.device)
    try:
        summary = train(preset_from_dict(PRESET), args.data, args.out, runtime, tokenizer=args.tokenizer)
    finally:
        shutdown()
    if not runtime.is_main:
        return 0
    packed = pack_run(args.out, allow_over_budget=True)
    result = evaluate_artifact(packed["artifact"], args.data, Runtime(device=runtime.device), tokenizer=args.tokenizer,
                               methods=EVAL_METHODS)
    print(f"final_{packed['quant']}_{packed['compressor']}_roundtrip_exact val_loss:{result['val_loss']:.8f} "
          f"val_bpb:{result['val_bpb']:.8f} eval_methods:{result['method']}")
    print(f"bytes_total:{packed['total_bytes']} bytes_code:{packed['code_bytes']} bytes_model:{packed['model_bytes']}")
    print(json.dumps({"val_loss": result["val_loss"], "val_bpb": result["val_bpb"], "steps": summary["steps"],
                      "methods": result["method"], "bytes_total": packed["total_bytes"],
                      "bytes_code": packed["code_bytes"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
'''


def _pgolf_imports(tree: ast.Module, top_level_only: bool) -> list[str]:
    """Module paths (relative, .py) imported from pgolf, top-level or anywhere."""
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pgolf"):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("pgolf")]
        for name in names:
            rel = name.split(".")[1:]
            for cand in (Path(*rel).with_suffix(".py") if rel else None, Path(*rel, "__init__.py") if rel else None):
                if cand is not None and (ROOT / cand).is_file():
                    out.append(str(cand))
    return out


def module_closure(addons: set[str], eval_methods: list[str] = (), quantizer: str = "int8-rtn",
                   compressors: list[str] = ()) -> list[str]:
    """Needed modules, each after its top-level pgolf dependencies: the entry modules, and the
    modules of the preset's add-ons, legal eval methods, quantizer and compressors (`pgolf.components`)."""
    method_modules = MODULES["evaluation method"]
    needed: set[str] = set()
    stack = list(ENTRY_MODULES) + [module_file(MODULES["model add-on"][a]) for a in sorted(addons)]
    stack += [module_file(method_modules[m]) for m in ["standard", *eval_methods] if m in method_modules]
    stack.append(module_file(MODULES["quantizer"][quantizer]))
    while stack:
        mod = stack.pop()
        if mod in needed or mod in EXCLUDED or COMPRESSOR_MODULES.get(mod, "") not in ("", *compressors):
            continue
        if mod.startswith("model/addons/") and Path(mod).stem not in addons | {"__init__", "base"}:
            continue
        needed.add(mod)
        stack += _imports_of((ROOT / mod).read_text(encoding="utf-8"), top_level_only=False)
    order: list[str] = []

    def visit(mod: str, path: tuple[str, ...]) -> None:
        if mod in order:
            return
        if mod in path:
            raise PgolfError(f"export: import cycle {' -> '.join(path + (mod,))}")
        deps = _imports_of((ROOT / mod).read_text(encoding="utf-8"), top_level_only=True)
        for dep in deps:
            if dep in needed:
                visit(dep, path + (mod,))
        order.append(mod)

    for mod in sorted(needed):
        visit(mod, ())
    return order


# A process exports again and again (the projection, the requirements, the export, a sweep's trials):
# each module's source is parsed once per content, not once per export.
@functools.lru_cache(maxsize=1024)
def _imports_of(source: str, top_level_only: bool) -> tuple[str, ...]:
    return tuple(_pgolf_imports(ast.parse(source), top_level_only))


@functools.lru_cache(maxsize=512)
def _strip(source: str, module: str) -> tuple[str, dict[str, str]]:
    """Remove pgolf imports and `from __future__` lines; return the code and its top-level defs."""
    tree = ast.parse(source)
    lines = source.splitlines()
    drop: list[tuple[int, int, int]] = []
    for node in ast.walk(tree):
        is_pgolf = (isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("pgolf", "__future__"))) or (
            isinstance(node, ast.Import) and any(a.name.startswith("pgolf") for a in node.names))
        if is_pgolf:
            drop.append((node.lineno, node.end_lineno, node.col_offset))
    for start, end, col in sorted(drop, reverse=True):
        # keep a `pass` so a block left with no statement stays valid
        lines[start - 1 : end] = [" " * col + "pass"] if col else []
    code = "\n".join(lines)
    defs: dict[str, str] = {}
    for node in ast.parse(code).body:
        targets: list[str] = []
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            targets = [node.name]
        elif isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        for t in targets:
            defs[t] = ast.unparse(node)
    return code, defs


def export_script(preset: Preset) -> str:
    methods = legal_methods(preset.eval_methods)
    modules = module_closure(set(preset.model.addons), methods, preset.pack.quant,
                             preset.pack.compressors or [preset.pack.compressor])
    seen: dict[str, tuple[str, str]] = {}
    parts = []
    for mod in modules:
        code, defs = _strip((ROOT / mod).read_text(encoding="utf-8"), mod)  # cached: read, never changed
        for name, text in defs.items():
            if name in seen and seen[name][1] != text:
                raise PgolfError(f"export: top-level name {name!r} is defined in both {seen[name][0]} and {mod}")
            seen[name] = (mod, text)
        parts.append(f"# ---------------------------------------------------------------------------- pgolf/{mod}\n{code}")
    header = (f'"""{preset.name}: exported by pgolf {pgolf.__version__}. Train under torchrun, pack, score the '
              'round-tripped artifact with the preset\'s legal eval methods.\n\n    torchrun --standalone '
              '--nproc_per_node=8 train_gpt.py   # DATA_PATH / TOKENIZER_PATH, or --data / --tokenizer\n"""\n'
              'from __future__ import annotations\n\nimport json\nimport os\nfrom pathlib import Path\n')
    preset_json = json.dumps(preset.to_dict(), sort_keys=True, separators=(",", ":"))
    body = (header + "\n\n".join(parts) + f"\n\nPRESET_JSON = {preset_json!r}\nEVAL_METHODS = {methods!r}\n"
            + MAIN)
    ast.parse(body)  # the export must at least be valid Python
    return body


# An export's one line that differs between presets of one module closure (a preset and its dry
# run, a sweep's trials): minified once with a placeholder, the preset's literal put in after.
PRESET_LINE = re.compile(r"^PRESET_JSON = (.*)$", re.M)
PRESET_PLACEHOLDER = "__PGOLF_PRESET_JSON__"


def minify(source: str) -> str | None:
    """python-minifier's output, or None when it is not installed."""
    m = PRESET_LINE.search(source)
    if m is None:
        return _minify(source)
    small = _minify(source[: m.start(1)] + repr(PRESET_PLACEHOLDER) + source[m.end(1) :])
    if small is None:
        return None
    literal = repr(ast.literal_eval(m.group(1)))
    for quoted in (repr(PRESET_PLACEHOLDER), f'"{PRESET_PLACEHOLDER}"'):
        if quoted in small:
            return small.replace(quoted, literal, 1)
    return _minify(source)  # the minifier rewrote the placeholder: minify the whole source instead


@functools.lru_cache(maxsize=8)
def _minify(source: str) -> str | None:
    try:
        import python_minifier
    except ImportError:
        return None
    return python_minifier.minify(source, remove_literal_statements=True, rename_globals=False)


def wrap(source: str, wrapper: str) -> str:
    """The script as shipped: plain, minified, or minified + LZMA or Brotli + base85 (self-extracting)."""
    if wrapper == "plain":
        return source
    small = minify(source)
    if small is None:
        raise PgolfError(f"code wrapper {wrapper!r} needs python-minifier: pip install python-minifier")
    if wrapper == "minified-lzma":
        return lzma_wrap(small)
    if wrapper == "minified-brotli":
        return brotli_wrap(small)
    return small


@functools.lru_cache(maxsize=8)
def _submission_script(preset_json: str, wrapper: str) -> str:
    return wrap(export_script(preset_from_dict(json.loads(preset_json))), wrapper)


def submission_script(preset: Preset, wrapper: str | None = None) -> tuple[str, str]:
    """(the counted train_gpt.py, its wrapper): the preset's export in `pack.code_wrapper`."""
    wrapper = wrapper or preset.pack.code_wrapper
    return _submission_script(preset.to_json(), wrapper), wrapper


# The contest's own environment has these; every other package pgolf imports is named on PyPI as
# it is imported.
CONTEST_PACKAGES = {"torch", "numpy", "sentencepiece"}


def requirements(source: str, compressors: list[str] = (), wrapper: str = "plain") -> list[str]:
    """Packages the exported (plain) script imports beyond the standard library and the contest's
    torch / numpy / sentencepiece: those of its import statements, plus the libraries of the
    compressors it packs with (imported by name when first used, so no statement shows them)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    found.update(PACKAGE_OF[c] for c in compressors if c in PACKAGE_OF)
    found.update(p for c in compressors for p in ALSO_USES.get(c, ()))
    if wrapper == "minified-brotli":
        found.add("brotli")
    third_party = found - set(sys.stdlib_module_names) - CONTEST_PACKAGES - {"__future__", "pgolf"}
    return sorted(third_party)


def preset_requirements(preset: Preset) -> list[str]:
    """What a submission of `preset` lists in requirements.txt beyond torch / numpy / sentencepiece."""
    return requirements(export_script(preset), preset.pack.compressors or [preset.pack.compressor],
                        preset.pack.code_wrapper)


def _self_extracting(module: str, compressed: bytes) -> str:
    """A two-line stub that decompresses base85 text with `module` and runs it."""
    blob = base64.b85encode(compressed).decode("ascii")
    return (f"import {module},base64\n"
            f"exec(compile({module}.decompress(base64.b85decode({blob!r})),__file__,'exec'))\n")


def lzma_wrap(source: str) -> str:
    """The script lzma-compressed and base85-encoded, exec'd on start."""
    return _self_extracting("lzma", lzma.compress(source.encode("utf-8"), preset=9 | lzma.PRESET_EXTREME))


def brotli_wrap(source: str) -> str:
    """The same stub with Brotli-11 (the 1.0611 record's wrapper; smaller than LZMA on code)."""
    import brotli

    return _self_extracting("brotli", brotli.compress(source.encode("utf-8"), quality=11))
