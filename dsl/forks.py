"""`layer NAME(FIELDS) in MESSAGE { bottoms = N  shape = EXPR  params = EXPR }`: declaring a
layer type of a Caffe fork, as an op definition (`archc.ir.ops.fork`) and a DSL op.

The rules are expressions of the language, evaluated when a layer of the type is added: `inputs`
is the list of the input shapes (each a list of ints, batch first), and each field is bound to
the layer's value. `shape` is one shape, or a list of shapes for several tops; `params` the
shapes of the layer's parameter blobs (default none); `bottoms` how many inputs it takes
(default 1: more make it a merge, of branches or of a list cursor).
"""
from __future__ import annotations

from typing import Any

import lark

from archc.dsl.expressions import Evaluator
from archc.dsl.values import Scope, type_name
from archc.errors import ArchError
from archc.ir.ops import OPS, Param, Primitive, Shape, ShapeError
from archc.ir.ops.fork import FIELD_KINDS, ForkField, ForkOp, ForkRules, declare

RULES = ("bottoms", "shape", "params", "macs")
# the DSL argument kind of each field kind
_ARGUMENT_KINDS = {"int": "int", "float": "number", "bool": "bool", "str": "string"}


def declare_layer(evaluator: Evaluator, item: lark.Tree, scope: Scope) -> tuple[type[ForkOp], Primitive]:
    """The op definition and DSL op of a `layer` declaration, evaluated in `scope`."""
    name_token, *field_trees, message_token, rules_tree = item.children
    caffe_type = str(name_token)
    if caffe_type in OPS:
        raise evaluator.error(f"'{caffe_type}' is one of Caffe's own layer types, which archc "
                              f"already knows: a declaration is for a fork's types", name_token)
    fields = [_field(evaluator, tree, scope) for tree in field_trees if tree is not None]
    message = str(message_token) if message_token is not None else None
    if fields and message is None:
        raise evaluator.error(f"layer '{caffe_type}' has fields: name the parameter message they "
                              f"belong to, e.g. `layer {caffe_type}(...) in "
                              f"{_snake(caffe_type)}_param {{ ... }}`", name_token)
    rules = {}
    for rule in rules_tree.children:
        rule_name, expression = rule.children
        if str(rule_name) not in RULES:
            raise evaluator.error(f"unknown rule '{rule_name}' in layer '{caffe_type}': the rules "
                                  f"are {', '.join(RULES)}", rule_name)
        if str(rule_name) in rules:
            raise evaluator.error(f"rule '{rule_name}' is given twice", rule_name)
        rules[str(rule_name)] = expression
    if "shape" not in rules:
        raise evaluator.error(f"layer '{caffe_type}' needs a `shape = ...` rule: the output shape "
                              f"from `inputs` and its fields", name_token)
    bottoms = 1
    if "bottoms" in rules:
        bottoms = evaluator.eval(rules["bottoms"], scope, None)
        if type_name(bottoms) != "int" or not 1 <= bottoms <= 64:
            raise evaluator.error("`bottoms` is the number of inputs, 1 to 64", rules["bottoms"])
    origin = str(evaluator.span(name_token))

    def bound(inputs: list[Shape], values: dict[str, Any], **more: Any) -> Scope:
        """The declaration's scope with the layer's fields and `inputs` (and `more`) bound."""
        rule_scope = Scope(scope)
        rule_scope.values.update(values, inputs=[list(shape) for shape in inputs], **more)
        return rule_scope

    def evaluate(rule: str, inputs: list[Shape], values: dict[str, Any]) -> list[Shape]:
        try:
            result = evaluator.eval(rules[rule], bound(inputs, values), None) if rule in rules else []
        except ArchError as error:
            raise ShapeError(f"its {rule} rule (declared at {origin}): {error.message}") from None
        shapes = [result] if rule == "shape" and _is_shape(result) else result
        if not (isinstance(shapes, list) and all(_is_shape(s) for s in shapes)):
            raise ShapeError(f"its {rule} rule (declared at {origin}) gave {type_name(result)} "
                             f"{result!r:.60}, not a shape (a list of positive ints) or a list "
                             f"of shapes")
        return [tuple(shape) for shape in shapes]

    def macs(inputs: list[Shape], output: Shape, values: dict[str, Any]) -> int:
        if "macs" not in rules:
            return 0
        try:
            count = evaluator.eval(rules["macs"], bound(inputs, values, output=list(output)), None)
        except ArchError as error:
            raise ShapeError(f"its macs rule (declared at {origin}): {error.message}") from None
        if type_name(count) != "int" or count < 0:
            raise ShapeError(f"its macs rule (declared at {origin}) gave {type_name(count)} "
                             f"{count!r:.60}, not a count")
        return count

    op = declare(caffe_type, message, fields, bottoms, ForkRules(
        lambda inputs, values: evaluate("shape", inputs, values),
        lambda inputs, values: evaluate("params", inputs, values), macs, origin))
    params = tuple(Param(f.name, _ARGUMENT_KINDS[f.kind], f.default, required=f.default is None)
                   for f in fields)
    primitive = Primitive(caffe_type, params, lambda arguments: [op(**arguments)],
                          f"{caffe_type} (a fork's layer, declared at {origin})", merge=bottoms > 1)
    return op, primitive


def _field(evaluator: Evaluator, tree: lark.Tree, scope: Scope) -> ForkField:
    name_token, kind_token, default_tree = tree.children
    kind = str(kind_token)
    if kind not in FIELD_KINDS:
        raise evaluator.error(f"unknown field type '{kind}': use {', '.join(FIELD_KINDS)}", kind_token)
    if default_tree is None:
        return ForkField(str(name_token), kind)
    default = evaluator.eval(default_tree, scope, None)
    expected = {"int": "int", "float": "float", "bool": "bool", "str": "string"}[kind]
    if kind == "float" and type_name(default) == "int":
        default = float(default)
    if type_name(default) != expected:
        raise evaluator.error(f"the default of '{name_token}' must be {kind}, got "
                              f"{type_name(default)}", default_tree)
    return ForkField(str(name_token), kind, default)


def _is_shape(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        type_name(d) == "int" and d > 0 for d in value)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))
