"""The PyTorch target's code as data: a few expression nodes that print as the Python of the
generated `model.py` and that archc evaluates itself for `--backend torch`, so the backend runs
what the file says without archc importing or executing any generated text.

Names of functions and classes (`Name`) are written by the op forms in archc's own source, never
taken from a model; they resolve under `torch`, `nn` (torch.nn) and `F` (torch.nn.functional).
Literals are Python's: numbers, booleans, strings (dictionary keys), tuples, lists and dicts.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

@dataclass(frozen=True)
class Name:
    """A function or class: `F.relu`, `nn.Conv2d`, `torch.cat`."""

    dotted: str


@dataclass(frozen=True)
class Variable:
    """A variable of `forward`: the current value of a Caffe blob."""

    name: str


@dataclass(frozen=True)
class Attribute:
    """`self.ATTRIBUTE`: a layer's module; or, with `of`, an attribute of another expression."""

    name: str
    of: Any = None


@dataclass(frozen=True)
class Call:
    function: Any
    args: tuple = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Binary:
    """`left OP right` for OP in + and *."""

    op: str
    left: Any
    right: Any


def call(function: str | Any, *args, **kwargs) -> Call:
    return Call(Name(function) if isinstance(function, str) else function, args,
                tuple(kwargs.items()))


def method(target: Any, name: str, *args, **kwargs) -> Call:
    return Call(Attribute(name, target), args, tuple(kwargs.items()))


_PRECEDENCE = {"+": 1, "*": 2}
_OPERATORS = {"+": operator.add, "*": operator.mul}


def render(node: Any) -> str:
    """The Python source of an expression."""
    if isinstance(node, Name):
        return node.dotted
    if isinstance(node, Variable):
        return node.name
    if isinstance(node, Attribute):
        if node.of is None:
            return f"self.{node.name}"
        of = render(node.of)  # an operation's (or a number's) attribute needs parentheses
        return f"{f'({of})' if isinstance(node.of, (Binary, int, float)) else of}.{node.name}"
    if isinstance(node, Call):
        arguments = [render(arg) for arg in node.args]
        arguments += [f"{key}={render(value)}" for key, value in node.kwargs]
        return f"{render(node.function)}({', '.join(arguments)})"
    if isinstance(node, Binary):
        def operand(side: Any) -> str:
            text = render(side)
            inner = isinstance(side, Binary) and _PRECEDENCE[side.op] < _PRECEDENCE[node.op]
            return f"({text})" if inner else text
        return f"{operand(node.left)} {node.op} {operand(node.right)}"
    if isinstance(node, tuple):
        items = [render(item) for item in node]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    if isinstance(node, list):
        return f"[{', '.join(render(item) for item in node)}]"
    if isinstance(node, dict):
        return "{" + ", ".join(f"{render(k)}: {render(v)}" for k, v in node.items()) + "}"
    if isinstance(node, float) and not math.isfinite(node):
        return f"float({str(node)!r})"  # inf and nan are no Python literals
    if isinstance(node, (bool, int, float, str)) or node is None:
        return repr(node)
    raise TypeError(f"no Python form for {node!r}")


def evaluate(node: Any, variables: dict[str, Any], module: Any, namespaces: dict[str, Any]) -> Any:
    """The value of an expression: `variables` holds forward's variables, `module` is `self`,
    `namespaces` maps `torch`, `nn` and `F` to the modules model.py imports under those names."""
    def value(item: Any) -> Any:
        return evaluate(item, variables, module, namespaces)
    if isinstance(node, Name):
        head, *path = node.dotted.split(".")
        resolved = namespaces[head]
        for part in path:
            resolved = getattr(resolved, part)
        return resolved
    if isinstance(node, Variable):
        return variables[node.name]
    if isinstance(node, Attribute):
        return getattr(module if node.of is None else value(node.of), node.name)
    if isinstance(node, Call):
        return value(node.function)(*(value(arg) for arg in node.args),
                                    **{key: value(item) for key, item in node.kwargs})
    if isinstance(node, Binary):
        return _OPERATORS[node.op](value(node.left), value(node.right))
    if isinstance(node, tuple):
        return tuple(value(item) for item in node)
    if isinstance(node, list):
        return [value(item) for item in node]
    if isinstance(node, dict):
        return {value(k): value(v) for k, v in node.items()}
    return node
