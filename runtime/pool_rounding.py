"""Translate pooling rounding in prototxt text to the spelling the installed Caffe understands.

Field 13 of Caffe's PoolingParameter means opposite things in the two schemas in use:
`ceil_mode: false` (OpenCV, forks, the reference model zoo) and `round_mode: FLOOR` (BVLC master)
both ask for floor rounding. A Caffe that does not know the spelling refuses the file; one that
ignores the setting silently computes different shapes (57x57 instead of 56x56 after ResNeXt's
pool1). So the setting is rewritten, never dropped: a floor that the installed schema cannot
express is an error.

The rewrite works on the text itself, so comments, layout and every line number stay as the user
wrote them, and error messages keep pointing at the user's file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from archc.errors import ArchError, Span

ROUNDING_FIELDS = ("ceil_mode", "round_mode")

_TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<punct>[{}<>:;,\[\]])
  | (?P<word>[^\s{}<>:;,\[\]"'\#]+)
""", re.VERBOSE)

_CEIL_VALUES = {"ceil_mode": ("true", "t", "1", "True"), "round_mode": ("CEIL", "0")}
_FLOOR_VALUES = {"ceil_mode": ("false", "f", "0", "False"), "round_mode": ("FLOOR", "1")}
_SPELLING = {
    ("round_mode", "ceil"): "round_mode: CEIL", ("round_mode", "floor"): "round_mode: FLOOR",
    ("ceil_mode", "ceil"): "ceil_mode: true", ("ceil_mode", "floor"): "ceil_mode: false",
}


@dataclass(frozen=True)
class RoundingSetting:
    """One `ceil_mode:`/`round_mode:` field inside a pooling_param."""

    layer: str | None     # the enclosing layer's name, when it has one
    field: str            # "ceil_mode" or "round_mode"
    rounding: str         # "ceil" or "floor"
    start: int            # character offsets of `field: value` in the text
    end: int
    span: Span


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    start: int


def _tokens(text: str, path: str) -> list[_Token]:
    tokens = []
    position = 0
    for match in _TOKEN.finditer(text):
        if match.start() != position:
            # Only an unterminated string leaves a gap.
            raise ArchError("unterminated string", _span(text, position, path))
        if match.lastgroup != "space":
            tokens.append(_Token(match.lastgroup, match.group(), match.start()))
        position = match.end()
    if position != len(text):
        raise ArchError("unterminated string", _span(text, position, path))
    return tokens


def _span(text: str, offset: int, path: str) -> Span:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return Span(path, line, column)


def find_rounding(text: str, path: str = "<prototxt>") -> list[RoundingSetting]:
    """Every pooling rounding setting in the text, with its layer's name and position."""
    tokens = _tokens(text, path)
    settings: list[RoundingSetting] = []
    stack: list[str] = []            # names of the enclosing messages
    layer_name: str | None = None
    pending: list[tuple[str, str, int, int]] = []   # the current layer's settings
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.text in ("}", ">"):
            if stack:
                stack.pop()
            if not stack:       # a top-level message (a layer) ends: its name is known now
                settings.extend(_settings(pending, layer_name, text, path))
                pending, layer_name = [], None
            i += 1
            continue
        if token.kind != "word":
            i += 1
            continue
        j = i + 1
        has_colon = j < len(tokens) and tokens[j].text == ":"
        if has_colon:
            j += 1
        if j >= len(tokens):
            break
        value = tokens[j]
        if value.text in ("{", "<"):
            stack.append(token.text)
        elif has_colon:
            if stack[-1:] == ["pooling_param"] and token.text in ROUNDING_FIELDS:
                pending.append((token.text, value.text, token.start, value.start + len(value.text)))
            elif len(stack) == 1 and token.text == "name" and value.kind == "string":
                layer_name = value.text[1:-1]
        else:
            i += 1
            continue
        i = j + 1
    settings.extend(_settings(pending, layer_name, text, path))
    return settings


def _settings(pending, layer_name, text, path) -> list[RoundingSetting]:
    result = []
    for field, value, start, end in pending:
        if value in _CEIL_VALUES[field]:
            rounding = "ceil"
        elif value in _FLOOR_VALUES[field]:
            rounding = "floor"
        else:
            allowed = ", ".join(_CEIL_VALUES[field][:1] + _FLOOR_VALUES[field][:1])
            raise ArchError(f"{field}: {value} is not a pooling rounding (use {allowed})",
                            _span(text, start, path))
        result.append(RoundingSetting(layer_name, field, rounding, start, end,
                                      _span(text, start, path)))
    return result


def translate_rounding(text: str, dialect: str, path: str = "<prototxt>") -> str:
    """The text with every pooling rounding spelled in `dialect`.

    `dialect` is "round_mode", "ceil_mode", or "ceil_only" (a schema with neither field, where
    only Caffe's default ceil rounding exists). Raises ArchError, naming the layer, for a floor
    rounding that "ceil_only" cannot express."""
    pieces = []
    position = 0
    for setting in find_rounding(text, path):
        if setting.field == dialect:
            continue
        if dialect == "ceil_only":
            if setting.rounding == "floor":
                layer = f"pooling layer '{setting.layer}'" if setting.layer else "a pooling layer"
                raise ArchError(
                    f"{layer} asks for floor rounding, which the installed Caffe cannot express "
                    f"(its schema has neither ceil_mode nor round_mode); it would silently round up "
                    f"instead. Use a Caffe whose PoolingParameter has round_mode (BVLC master) or "
                    f"ceil_mode", setting.span)
            replacement = ""
        else:
            replacement = _SPELLING[(dialect, setting.rounding)]
        pieces.append(text[position:setting.start])
        pieces.append(replacement)
        position = setting.end
    pieces.append(text[position:])
    return "".join(pieces)
