"""String literals with embedded expressions: `"res{stage + 2}{letter(b)}_branch1"`.

A literal is split once into text and parsed expressions (`split`), then joined into text each
time it is evaluated (`join`). `{{` and `}}` are literal braces.
"""
from __future__ import annotations

from typing import Any

import lark

from archc.dsl import parser
from archc.dsl.expressions import Evaluator
from archc.dsl.values import BlockDef, Frame, Scope, show, type_name
from archc.errors import ArchError, Span

# The longest text a string literal may produce: well above the longest layer name
# (elaborate.MAX_NAME), so that a name built from parts fails on the name's own limit.
MAX_STRING = 2048


def split(token: lark.Token, span: Span) -> list[str | lark.Tree]:
    """`"res{n}_conv{i + 1}"` -> ["res", <expr n>, "_conv", <expr i + 1>]; `span` is the token's."""
    raw = str(token)[1:-1]
    parts: list[str | lark.Tree] = []
    literal: list[str] = []
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "\\" and i + 1 < len(raw):
            literal.append({"n": "\n", "t": "\t"}.get(raw[i + 1], raw[i + 1]))
            i += 2
        elif raw.startswith("{{", i) or raw.startswith("}}", i):
            literal.append(char)
            i += 2
        elif char == "{":
            end = _matching_brace(raw, i)
            if end is None:
                raise ArchError("unclosed '{' in string: write '{{' for a literal brace",
                                Span(span.path, span.line, span.column + 1 + i))
            inner_span = Span(span.path, span.line, span.column + 2 + i)
            if not raw[i + 1:end].strip():
                raise ArchError("empty '{}' in string: put an expression inside, or write "
                                "'{{}}' for literal braces", inner_span)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(parser.parse_expression(raw[i + 1:end], inner_span))
            i = end + 1
        elif char == "}":
            raise ArchError("unmatched '}' in string: write '}}' for a literal brace",
                            Span(span.path, span.line, span.column + 1 + i))
        else:
            literal.append(char)
            i += 1
    if literal:
        parts.append("".join(literal))
    return parts


def join(parts: list[str | lark.Tree], evaluator: Evaluator, scope: Scope, frame: Frame | None,
         token: lark.Token) -> str:
    """The text of a split literal, its expressions evaluated in `scope`."""
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        else:
            value: Any = evaluator.eval(part, scope, frame)
            if isinstance(value, (list, dict, BlockDef)) or value is None:
                raise evaluator.error(f"cannot put a {type_name(value)} into a name: use a number "
                                      f"or a string", part)
            out.append(show(value))
    text = "".join(out)
    if len(text) > MAX_STRING:
        raise evaluator.error(f"string longer than {MAX_STRING} characters", token)
    return text


def _matching_brace(text: str, start: int) -> int | None:
    depth = 0
    in_string = False
    for index in range(start, len(text)):
        char = text[index]
        if char == '"' and text[index - 1] != "\\":
            in_string = not in_string
        elif not in_string and char == "{":
            depth += 1
        elif not in_string and char == "}":
            depth -= 1
            if depth == 0:
                return index
    return None
