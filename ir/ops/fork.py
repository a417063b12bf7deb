"""Layer types of Caffe forks (Axpy, ConvolutionDepthwise, Interp, ...), declared in .arch files.

A declaration (`layer NAME(FIELDS) in MESSAGE { bottoms = ..., shape = ..., params = ... }`, see
docs/language.md) becomes an op definition class made at run time: its fields are `caffe()`
fields of the declared message, so it is written and read back like any built-in op, and its
shape and parameter blobs are functions the DSL makes from the declared expressions. Declared
types are kept in a `ForkTypes` table of their own, not in `OPS`: they are not in the Caffe
archc runs, and two model files may declare one name differently.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from archc.ir.ops.base import Op, ParamBlob, Shape, ShapeError, caffe, definition, read_field

#: a declared field's kind -> its Python type and the protobuf scalar type that carries it
FIELD_KINDS = {"int": (int, "int32"), "float": (float, "float"), "bool": (bool, "bool"),
               "str": (str, "string")}


@dataclass(frozen=True)
class ForkField:
    name: str
    kind: str                      # a key of FIELD_KINDS
    default: Any = None            # None: required (the language has no None value)


@dataclass(frozen=True)
class ForkRules:
    """What a declaration computes from the inputs' shapes and the layer's field values: tops'
    shapes, parameter blob shapes, and multiply-accumulates per image; all raise ShapeError."""

    shapes: Callable[[list[Shape], dict[str, Any]], list[Shape]]
    blobs: Callable[[list[Shape], dict[str, Any]], list[Shape]]
    macs: Callable[[list[Shape], Shape, dict[str, Any]], int]   # per image, from the output
    origin: str                    # where it was declared, for messages


@definition
class ForkOp(Op):
    """Base of the classes `declare` makes."""

    built_in = False
    rules: ClassVar[ForkRules]
    field_kinds: ClassVar[tuple[str, ...]]  # each field's kind (FIELD_KINDS), in field order

    def _kind(self) -> Any:
        # each load of a declaration makes a class of its own: the declaration is the kind
        return (self.caffe_type, self.rules.origin)

    def field_values(self) -> dict[str, Any]:
        """The declared fields, by name: what the rules read (and an export form checks)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def max_tops(self) -> int | None:
        return None  # as many as the shape rule gives; the tracker compares

    def top_count(self, bottoms: int) -> int | None:
        return None

    def infer(self, inputs: list[Shape], tops: int) -> tuple[Shape, ...]:
        shapes = self.rules.shapes(inputs, self.field_values())
        if len(shapes) != tops:
            raise ShapeError(f"{self.caffe_type} (declared at {self.rules.origin}) writes "
                             f"{len(shapes)} top(s), and the layer names {tops}")
        return tuple(shapes)

    @classmethod
    def from_caffe(cls, layer: Any, dialect: str) -> ForkOp:
        """Declared fields read from the layer's message; a field the declaration lacks is
        refused rather than dropped, and a repeated field of a Caffe message (`kernel_size`)
        must hold at most one value."""
        if cls.param_message is None:
            return cls()
        params = getattr(layer, cls.param_message)
        names = {field.name for field in dataclasses.fields(cls)}
        undeclared = sorted(descriptor.name for descriptor, _ in params.ListFields()
                            if descriptor.name not in names)
        if undeclared:
            raise ValueError(f"{cls.param_message}.{undeclared[0]} is set, and the declaration "
                             f"of {cls.caffe_type} ({cls.rules.origin}) has no such field")
        values = {}
        for field in dataclasses.fields(cls):
            value = read_field(params, field.name)
            if isinstance(value, tuple):
                if len(value) > 1:
                    raise ValueError(f"{cls.param_message}.{field.name} holds {len(value)} values; "
                                     f"the declaration of {cls.caffe_type} takes one")
                value = value[0] if value else field.default
            if value is not dataclasses.MISSING:
                values[field.name] = value
        return cls(**values)

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return self.rules.macs(inputs, output, self.field_values())

    def param_blobs(self, inputs: list[Shape]) -> tuple[ParamBlob, ...]:
        # weights first (He-normal over the fan-in of a 2-D or larger blob), then biases
        shapes = self.rules.blobs(inputs, self.field_values())
        return tuple(ParamBlob(shape, "he_normal" if index == 0 and len(shape) > 1 else
                               "ones" if index == 0 else "zeros")
                     for index, shape in enumerate(shapes))


def declare(caffe_type: str, param_message: str | None, fields: list[ForkField], bottoms: int,
            rules: ForkRules) -> type[ForkOp]:
    """The op definition class of a declared fork type."""
    # required fields first, as a dataclass needs them
    ordered = sorted(fields, key=lambda field: field.default is not None)
    namespace: dict[str, Any] = {
        "__annotations__": {field.name: FIELD_KINDS[field.kind][0] for field in ordered},
        "__module__": __name__, "caffe_type": caffe_type, "param_message": param_message,
        "min_bottoms": bottoms, "max_bottoms": bottoms, "rules": rules,
        "field_kinds": tuple(field.kind for field in ordered),
    }
    for field in ordered:
        namespace[field.name] = caffe(dataclasses.MISSING if field.default is None else field.default)
    return definition(type(caffe_type, (ForkOp,), namespace))


#: the fork types a compile or an import knows: Caffe type name -> definition
ForkTypes = dict[str, type[ForkOp]]
