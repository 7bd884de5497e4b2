"""Run a submission script's own byte-table builder in isolation: `python -m pgolf.review.table_probe
SCRIPT TOKENIZER OUT.npz` (a subprocess of `pgolf check`, with a timeout).

Only the script's imports (those that fail, e.g. GPU-only ones, are skipped) and the top-level
definitions the builder needs are executed — its `main()`, training and any other statement are
not — then the builder is called on the tokenizer. Builders known: the contest's `build_sentencepiece_luts(sp, vocab_size, device)`
→ (base_bytes, has_leading_space, is_boundary_token), and pgolf's exported
`build_byte_tables(sp, table_size)` → ByteTables.
"""

from __future__ import annotations

import ast
import sys

BUILDERS = ("build_sentencepiece_luts", "build_byte_tables")


def isolated_module(source: str, entry: str) -> ast.Module:
    """The script's imports, and the top-level definitions `entry` needs (the names it uses,
    followed through the definitions that define them), in the script's order."""
    tree = ast.parse(source)
    defined: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    defined[t.id] = node
    needed, todo = set(), [entry]
    while todo:
        name = todo.pop()
        node = defined.get(name)
        if node is None or id(node) in needed:
            continue
        needed.add(id(node))
        todo += [n.id for n in ast.walk(node) if isinstance(n, ast.Name)]
    keep = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)) or id(n) in needed]
    return ast.Module(body=keep, type_ignores=[])


def builder_names(source: str) -> list[str]:
    tree = ast.parse(source)
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in BUILDERS]


def main(argv: list[str]) -> int:
    import numpy as np
    import sentencepiece as spm

    script, tokenizer, out = argv
    source = open(script, encoding="utf-8").read()
    names = builder_names(source)
    if not names:
        print(f"no byte-table builder ({' or '.join(BUILDERS)}) defined at the top level", file=sys.stderr)
        return 3
    import types

    module = types.ModuleType("pgolf_table_probe")
    module.__file__ = script
    sys.modules[module.__name__] = module  # dataclasses look their module up
    namespace = module.__dict__
    for node in isolated_module(source, names[0]).body:
        code = compile(ast.Module(body=[node], type_ignores=[]), script, "exec")
        try:
            exec(code, namespace)  # noqa: S102 - the point of the probe
        except ImportError as exc:  # a GPU-only import (flash attention, triton) the builder does not need
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                raise
            print(f"skipped line {node.lineno}: {exc}", file=sys.stderr)
    sp = spm.SentencePieceProcessor(model_file=tokenizer)
    name = names[0]
    if name == "build_sentencepiece_luts":
        import torch

        base, space, boundary = namespace[name](sp, sp.vocab_size(), torch.device("cpu"))
        arrays = [t.cpu().numpy() for t in (base, space, boundary)]
    else:
        tables = namespace[name](sp, sp.vocab_size())
        arrays = [np.asarray(tables.base_bytes), np.asarray(tables.leading_space), np.asarray(tables.boundary)]
    np.savez(out, base_bytes=arrays[0].astype(np.int64), leading_space=arrays[1].astype(bool),
             boundary=arrays[2].astype(bool), builder=np.array(name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
