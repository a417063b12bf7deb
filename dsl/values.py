"""Runtime values of the .arch language besides Python's int/float/str/bool/list/dict, and the
scopes and frames they are evaluated in."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lark

from archc.errors import Span
from archc.ir.net import CallFrame
from archc.ir.ops import Shape


@dataclass(frozen=True)
class Tensor:
    """A blob as the language sees it: its name, the shape it had when this value was taken, and
    how many in-place layers had rewritten it by then (a later in-place layer makes this value
    unreadable: Caffe would hand a reader the rewritten blob)."""

    blob: str
    shape: Shape
    version: int = 0

    ATTRIBUTES = ("n", "c", "h", "w", "shape", "name")

    def attribute(self, name: str) -> Any:
        if name == "shape":
            return list(self.shape)
        if name == "name":
            return self.blob
        if name not in ("n", "c", "h", "w"):  # not a substring test: `"nchw".index("hw")` is 2
            raise KeyError(name)
        axis = "nchw".index(name)
        if axis >= len(self.shape):
            raise KeyError(name)
        return self.shape[axis]


@dataclass(frozen=True)
class BlockDef:
    """A user-defined block: a parameterised sub-graph, closed over its file's top-level scope."""

    name: str
    formals: tuple[tuple[str, lark.Tree | None], ...]
    body: lark.Tree
    scope: "Scope"
    span: Span


class Scope:
    """Lexical scope: names bound by `let`, `param`, `for` and block parameters."""

    def __init__(self, parent: "Scope | None" = None):
        self.parent = parent
        self.values: dict[str, Any] = {}
        self.params: set[str] = set()  # the names bound by `param` (a file's top-level scope)

    def lookup(self, name: str) -> Any:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.values:
                return scope.values[name]
            scope = scope.parent
        raise KeyError(name)

    def names(self) -> set[str]:
        found: set[str] = set()
        scope: Scope | None = self
        while scope is not None:
            found.update(scope.values)
            scope = scope.parent
        return found


@dataclass
class Frame:
    """Where a body runs: the cursor (current blob), the body's input blob, and the block calls and
    loop iterations it runs in (recorded on each layer it emits)."""

    cursor: Tensor | None
    input: Tensor | None
    depth: int = 0
    call_path: tuple[CallFrame, ...] = ()


def type_name(value: Any) -> str:
    """How a value's type reads in a message."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, Tensor):
        return "tensor"
    if isinstance(value, BlockDef):
        return "block"
    if value is None:
        return "nothing"
    return type(value).__name__


def show(value: Any) -> str:
    """A value as the language would write it (for messages and string interpolation)."""
    return "".join(_pieces(value)) if isinstance(value, (list, dict)) else _atom(value, quoted=False)


def brief(value: Any, limit: int = 80, quoted: bool = False) -> str:
    """`show` (a string in quotes, as a file writes it, if `quoted`), cut to `limit` characters:
    messages stay one readable line whatever the value, and a long list is only written as far
    as it is shown."""
    if isinstance(value, (list, dict)):
        text = ""
        for piece in _pieces(value):
            text += piece
            if len(text) > limit:
                break
    else:
        text = _atom(value, quoted)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _atom(value: Any, quoted: bool) -> str:
    """The text of a value other than a list or table: what names are made of, written without
    the generator a container's text takes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"' if quoted else value
    if isinstance(value, Tensor):
        return value.blob
    if isinstance(value, BlockDef):
        return f"block {value.name}"
    return repr(value)


def _pieces(value: list | dict):
    """The text of a list or table, piece by piece."""
    if isinstance(value, list):
        yield "["
        for index, item in enumerate(value):
            yield ", " if index else ""
            yield from _element(item)
        yield "]"
    else:
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            yield ", " if index else ""
            yield from _element(key)
            yield ": "
            yield from _element(item)
        yield "}"


def _element(value: Any):
    """The pieces of an element of a list or table: strings inside them are always quoted."""
    return _pieces(value) if isinstance(value, (list, dict)) else (_atom(value, quoted=True),)


def allowed_text(values: list | range) -> str:
    """A parameter's allowed values as users of Python tools read them: `[32, 1024]` for a range
    (both ends included), `{50, 101, 152}` for a list (the first and last few of a long one)."""
    if isinstance(values, range) and values.step == 1 and len(values) > 1:
        return f"[{values.start}, {values[-1]}]"
    shown = [show(value) for value in values]
    if len(shown) > 12:
        shown = [*shown[:3], "...", *shown[-2:]]
    return "{" + brief(", ".join(shown), 200) + "}"


def allowed_choice(values: list | range) -> str:
    """What a value must be: `an integer in [32, 1024]`, `one of {50, 101, 152}`."""
    text = allowed_text(values)
    return f"an integer in {text}" if text.startswith("[") else f"one of {text}"
