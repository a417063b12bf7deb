"""The error type of evaluation: a user-facing problem with its inputs or its results file."""
from archc.errors import ArchError


class EvalError(ArchError):
    """A problem that stops an evaluation; it has no place in a source file, so it prints as
    `archc: error: MESSAGE`."""


class NothingEvaluated(EvalError):
    """A run that went through its images and could evaluate none: it measured nothing, which is
    a failure of the run (exit status 1) rather than of its command line."""

    exit_code = 1
