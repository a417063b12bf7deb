"""The error type of evaluation: a user-facing problem with its inputs or its results file."""
from archc.errors import ArchError


class EvalError(ArchError):
    """A problem that stops an evaluation; it has no place in a source file, so it prints as
    `archc: error: MESSAGE`."""
