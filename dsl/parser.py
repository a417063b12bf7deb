"""Source text -> Lark parse tree, with syntax errors turned into `ArchError`s at the right place."""
from __future__ import annotations

import functools
import re
from pathlib import Path

import lark
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from archc.errors import ArchError, Span

GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")
# Elaboration walks the tree recursively; refusing deeper trees up front keeps it far from
# Python's recursion limit and points at the construct instead of failing somewhere inside.
MAX_NESTING = 100
# A string literal's source text: twice the longest text a literal may produce
# (interpolation.MAX_STRING), room for the expressions in its braces. Refused while scanning, so
# a multi-megabyte literal never reaches the parser (which would hold it many times over).
MAX_STRING_LITERAL = 4096
# Lark reads about 100,000 tokens a second here: this keeps any file's parse (or its refusal)
# well under a second, at over ten times the tokens of the model library's largest file.
MAX_TOKENS = 20_000
# What the scan before parsing sees: strings (closed or not), comments, brackets, other tokens.
_SCAN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[(\[{]|[)\]}]|\w+|\S')

# How regex terminals read in a message; literal terminals are shown quoted as written.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "COMP_OP": "a comparison",
    "RANGE_OP": "'..'",
    "ADD_OP": "'+' or '-'",
    "MUL_OP": "an operator",
    "POW_OP": "'**'",
    "$END": "end of file",
}


@functools.lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    # cache=True keeps the LALR tables in a temp file keyed by the grammar's hash: building them
    # costs more than compiling a whole ResNet, every time the command starts.
    return lark.Lark(GRAMMAR_PATH.read_text(), parser="lalr", propagate_positions=True,
                     maybe_placeholders=True, start=["start", "expr"], lexer="basic",
                     cache=True)


def parse(source: str, path: str) -> lark.Tree:
    """Parse a whole .arch file."""
    return _parse(source, path, "start", line_offset=0, column_offset=0)


def parse_expression(text: str, span: Span) -> lark.Tree:
    """Parse an expression embedded in a string (`"{prefix}{n}_conv1"`), positions relative to `span`."""
    return _parse(text, span.path, "expr", line_offset=span.line - 1, column_offset=span.column - 1)


def _parse(source: str, path: str, start: str, line_offset: int, column_offset: int) -> lark.Tree:
    _scan(source, path, line_offset, column_offset)
    try:
        tree = _parser().parse(source, start=start)
    except UnexpectedInput as error:
        raise _syntax_error(error, source, path, line_offset, column_offset) from None
    if line_offset or column_offset:
        _shift_positions(tree, line_offset, column_offset)
    _check_nesting(tree, path)
    return tree


def _scan(source: str, path: str, line_offset: int, column_offset: int) -> None:
    """Refuse oversized string literals, bracket nesting beyond MAX_NESTING and more than
    MAX_TOKENS tokens before parsing, in time linear in the text: parsing such input first took
    seconds and gigabytes."""
    depth = tokens = 0
    for match in _SCAN.finditer(source):
        token = match.group()
        tokens += token[0] != "#"
        if tokens > MAX_TOKENS:
            message = (f"more than {MAX_TOKENS} tokens: split the model into library files, or "
                       f"generate long lists with `for` and ranges")
        elif token[0] in "([{":
            depth += 1
            if depth <= MAX_NESTING:
                continue
            message = (f"nested more than {MAX_NESTING} levels deep: split the expression or body "
                       f"with `let`s or blocks")
        elif token[0] in ")]}":
            depth -= 1
            continue
        elif token[0] == '"' and len(token) > MAX_STRING_LITERAL:
            message = (f"string literal of {len(token)} characters: the longest allowed is "
                       f"{MAX_STRING_LITERAL}")
        else:
            continue
        line = source.count("\n", 0, match.start()) + 1
        column = match.start() - (source.rfind("\n", 0, match.start()) + 1) + 1
        raise ArchError(message, Span(path, line + line_offset,
                                      column + (column_offset if line == 1 else 0)))


def _check_nesting(tree: lark.Tree, path: str) -> None:
    pending = [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_NESTING:
            raise ArchError(f"nested more than {MAX_NESTING} levels deep: split the expression or "
                            f"body with `let`s or blocks", Span(path, node.meta.line, node.meta.column))
        pending.extend((child, depth + 1) for child in node.children if isinstance(child, lark.Tree))


def _syntax_error(error: UnexpectedInput, source: str, path: str,
                  line_offset: int, column_offset: int) -> ArchError:
    line, column = error.line, error.column
    if isinstance(error, UnexpectedCharacters):
        char = source[error.pos_in_stream] if error.pos_in_stream < len(source) else "?"
        if char == '"':  # a string token ends at a closing quote on its own line
            message = 'unclosed string: end it with " on the same line'
        elif char == "'":
            message = f"unexpected character {char!r}: strings use double quotes"
        else:
            message = f"unexpected character {char!r}"
    elif isinstance(error, (UnexpectedToken, UnexpectedEOF)):
        token = getattr(error, "token", None)
        if token is None or token.type == "$END":
            message = "unexpected end of input"
            # Lines as Lark counts them (by "\n" only), ending at the last one with text.
            lines = source.split("\n")
            while len(lines) > 1 and not lines[-1].strip():
                lines.pop()
            line, column = len(lines), len(lines[-1]) + 1
        else:
            message = f"unexpected {_describe_token(token)}"
        expected = sorted({_describe_terminal(name) for name in error.expected})
        if expected:
            message += f"; expected {_join_alternatives(expected)}"
        hint = _hint(error) if isinstance(error, UnexpectedToken) else None
        if hint:
            message += f" ({hint})"
    else:
        message = "syntax error"
    if line is None or line < 1:
        line, column = 1, 1
    column = column + (column_offset if line == 1 else 0)
    return ArchError(message, Span(path, line + line_offset, column))


# Common mistakes, recognised by the LALR state and token type they fail at (the idea of Lark's
# match_examples, keyed by the state alone so that how deep the mistake sits does not matter):
# each hint names the fix. Every example must fail to parse, at the token the hint is about.
_MISTAKES = {
    'layer names follow `as`: conv(64, 3) as "conv1"': [
        'net { conv(64, 3) "conv1" }', 'net { relu "r" }'],
    "compare with `==`; `=` binds a `let` or a keyword argument": [
        "net { if x = 1 { } }", "let a = 1 = 2", "let a = x == 1 ? y = 2 : 3"],
    "separate arguments and list items with commas": [
        "net { conv(64 3) }", "let a = [1 2]", "let a = max(1 2)"],
    "bind names with `let`: let x = 1": ["net { x = 1 }"],
    'a `branch` belongs inside a merge: concat as "x" { branch { ... } branch { ... } }': [
        "net { branch { } }", "net { relu branch { } }", "net { relu as \"r\" branch { } }"],
    "a file holds import, param, let, block and net declarations": ["x = 1", "conv(3, 1)"],
}


# A keyword argument after an op's names (`relu as "x" inplace = false`) reads as a new statement
# `inplace` failing at '=': the parser state of a missing `let` (`x = 1`). What tells them apart
# is where the name stands: on the line of the op statement just before it.
_KEYWORD_AFTER_OP = ('keyword arguments go in the parentheses right after the op: '
                     'relu(inplace = false) as "x"')


def _hint(error: UnexpectedToken) -> str | None:
    if _keyword_argument_after_op(error):
        return _KEYWORD_AFTER_OP
    return _mistake_states().get((error.state.position, error.token.type))


def _keyword_argument_after_op(error: UnexpectedToken) -> bool:
    stack = error.state.value_stack
    if error.token.type != "EQUAL" or len(stack) < 2:
        return False
    name, statements = stack[-1], stack[-2]
    if not (isinstance(name, lark.Token) and name.type == "NAME"):
        return False
    previous = statements.children[-1] if isinstance(statements, lark.Tree) and statements.children else None
    return (isinstance(previous, lark.Tree) and previous.data == "apply_stmt"
            and previous.meta.end_line == name.line)


@functools.lru_cache(maxsize=1)
def _mistake_states() -> dict[tuple[int, str], str]:
    states: dict[tuple[int, str], str] = {}
    for hint, examples in _MISTAKES.items():
        for example in examples:
            try:
                _parser().parse(example, start="start")
            except UnexpectedToken as failure:
                states.setdefault((failure.state.position, failure.token.type), hint)
            else:
                raise AssertionError(f"mistake example parses: {example!r}")
    return states


def _describe_token(token: lark.Token) -> str:
    if token.type in ("NAME", "INT", "FLOAT"):
        return f"{_TERMINAL_WORDS[token.type].split(' ', 1)[1]} '{token}'"
    if token.type == "STRING":
        return f"string {token}"
    return f"'{token}'"


def _describe_terminal(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    terminal = _parser().get_terminal(name)
    return f"'{terminal.pattern.value}'"


def _join_alternatives(words: list[str]) -> str:
    if len(words) == 1:
        return words[0]
    if len(words) > 8:
        return ", ".join(words[:8]) + ", ..."
    return ", ".join(words[:-1]) + " or " + words[-1]


def _shift_positions(tree: lark.Tree, line_offset: int, column_offset: int) -> None:
    """Move an embedded expression's positions to where it stands in the file (one line only)."""
    for node in tree.iter_subtrees():
        meta = node.meta
        if not meta.empty:
            meta.column += column_offset
            meta.end_column += column_offset
            meta.line += line_offset
            meta.end_line += line_offset
        # Each token is the child of exactly one subtree, so each is shifted once.
        for child in node.children:
            if isinstance(child, lark.Token):
                child.line += line_offset
                child.column += column_offset
                if child.end_column is not None:
                    child.end_column += column_offset
