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
    return "".join(_pieces(value, quoted=False))


def literal(value: Any) -> str:
    """`show`, with a string in quotes, as it is written in a file (`"conv1"`, `[1, 2]`)."""
    return "".join(_pieces(value, quoted=True))


def brief(value: Any, limit: int = 80, quoted: bool = False) -> str:
    """`show` (or `literal`), cut to `limit` characters: messages stay one readable line whatever
    the value, and a long list is only written as far as it is shown."""
    text = ""
    for piece in _pieces(value, quoted):
        text += piece
        if len(text) > limit:
            break
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _pieces(value: Any, quoted: bool):
    """The text of `value`, piece by piece; strings inside lists and tables are always quoted."""
    if isinstance(value, bool):
        yield "true" if value else "false"
    elif isinstance(value, str):
        yield f'"{value}"' if quoted else value
    elif isinstance(value, list):
        yield "["
        for index, item in enumerate(value):
            yield ", " if index else ""
            yield from _pieces(item, quoted=True)
        yield "]"
    elif isinstance(value, dict):
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            yield ", " if index else ""
            yield from _pieces(key, quoted=True)
            yield ": "
            yield from _pieces(item, quoted=True)
        yield "}"
    elif isinstance(value, Tensor):
        yield value.blob
    elif isinstance(value, BlockDef):
        yield f"block {value.name}"
    else:
        yield repr(value)


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
