"""One source-span type and one error family, from syntax errors through a failed evaluation.

Every stage (parser, elaboration, shape inference, prototxt import, runtime, command line) reports
problems as an `ArchError` or a subclass of it, carrying the `Span` of the construct at fault where
there is one, so the CLI prints them all the same way: ``FILE:LINE:COL: error: MESSAGE`` followed
by the source line and a caret, or ``archc: error: MESSAGE``, and ends with the error's
`exit_code`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A region of a source file; lines and columns count from 1."""

    path: str
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


class ArchError(Exception):
    """A user-facing error at a place in a source file (or nowhere, when `span` is None)."""

    #: the exit status of a command that ends with this error
    exit_code = 2

    def __init__(self, message: str, span: Span | None = None, notes: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.span = span
        self.notes = notes

    def render(self, source: str | None = None) -> str:
        """The diagnostic as the CLI prints it, with the source line and a caret when known."""
        where = f"{self.span}: " if self.span else "archc: "
        lines = [f"{where}error: {self.message}"]
        if self.span and source is not None:
            # Lines end at "\n" only, as the parsers count them (splitlines() also breaks at
            # form feeds, "\r" and other separators, and would show the wrong line).
            text_lines = source.split("\n")
            if 1 <= self.span.line <= len(text_lines):
                text = text_lines[self.span.line - 1].rstrip("\r").expandtabs(1)
                caret_col = max(self.span.column, 1)
                width = 1
                if self.span.end_line == self.span.line and self.span.end_column:
                    width = max(1, self.span.end_column - self.span.column)
                width = min(width, max(1, len(text) - caret_col + 1))
                lines.append(f"    {text}")
                lines.append("    " + " " * (caret_col - 1) + "^" + "~" * (width - 1))
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


class UsageError(ArchError):
    """A command-line mistake: an unknown or malformed option, options that do not go together."""
