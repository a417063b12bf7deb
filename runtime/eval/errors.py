"""The one error type of evaluation: a user-facing problem; str() is the whole message."""


class EvalError(Exception):
    pass
