"""pgolf's own error types.

Every failure a user can cause (bad files, bad presets, bad flags) raises a subclass of
`PgolfError` whose message is one self-contained line; the CLI prints it and exits non-zero
instead of showing a traceback.
"""


class PgolfError(Exception):
    """Base class: a user-facing, one-line error."""


class ShardError(PgolfError):
    """A token shard is malformed (magic, version, size, truncation)."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class ConfigError(PgolfError):
    """A preset or override is invalid (unknown key, wrong type)."""


class DataError(PgolfError):
    """Input data is missing, empty or inconsistent with the model/tokenizer."""


class TokenizerError(PgolfError):
    """A tokenizer could not be loaded or trained."""


class ArtifactError(PgolfError):
    """An artifact file is malformed, truncated, tampered with or of an unknown version."""


class TrainingDiverged(PgolfError):
    """The training loss became NaN or infinite (learning rates too high, usually)."""


class BudgetError(PgolfError):
    """An artifact does not fit its byte budget."""


def did_you_mean(name: object, valid) -> str:
    """"; did you mean 'x'?" naming the closest valid name, or "" when none is close: the one hint
    every unknown-name error carries."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
