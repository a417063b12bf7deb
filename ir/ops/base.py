"""What every op definition is made of: the `Op` base, its registry, and Caffe's spelling helpers.

An op definition is one immutable dataclass per Caffe layer type that holds, in one place:
- its Caffe type name and `*_param` message, and its fields: dataclass fields declared with
  `caffe()` carry the Caffe field name and default (tests check both against the schema);
- its shape rule (`infer`, Caffe's C++ exactly), parameter blobs with their shapes and fillers
  (`param_blobs`), and multiply-accumulates (`macs`);
- whether Caffe can run it in place, or makes its top a view of its bottom; whether a CPU Caffe
  can run its forward and backward passes;
- how many bottoms and tops it takes;
- the DSL spellings that emit it (`primitives`: names, typed arguments, a builder);
- how it is written (`caffe_fields`) and read back (`from_caffe`): by default generically from
  the `caffe()` fields, overridden where Caffe's spelling is irregular.
Subclasses with a `caffe_type` register themselves in `REGISTRY`, so adding an op is adding a class.
"""
from __future__ import annotations

import dataclasses
import math
import struct
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, NamedTuple

Shape = tuple[int, ...]
INT_MAX = 2 ** 31 - 1  # Caffe's sizes and blob counts are C ints
# Caffe's float fields are float32: larger values do not load, smaller ones become denormals or 0
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_MIN_NORMAL = 1.1754943508222875e-38
MAX_AXES = 32  # Caffe's kMaxBlobAxes

#: Caffe type name -> op definition, filled as the op modules are imported (see `ir.ops`).
REGISTRY: dict[str, type[Op]] = {}


class ShapeError(ValueError):
    """An op cannot be applied to its input shapes; the message says why and how to fix it."""


# ----- the DSL spelling of an op (data; the DSL checks and binds arguments) -------------------

@dataclass(frozen=True)
class Param:
    """One argument of a DSL op."""

    name: str
    kind: str  # int | number | bool | pair | ints | numbers | string | choice (of `choices`)
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""


def required(name: str, kind: str, doc: str = "") -> Param:
    return Param(name, kind, required=True, doc=doc)


@dataclass(frozen=True)
class Primitive:
    """A built-in op of the language: a name, typed parameters, and a builder from checked
    arguments to the IR ops it emits, in order (`bn` emits BatchNorm then Scale).

    How many tensors it reads and writes is its op's (`min_bottoms`, `max_bottoms`,
    `top_count`): an op reading several takes them from a list cursor, one reading none ignores
    the cursor, and one writing several leaves the list of them."""

    name: str
    params: tuple[Param, ...]
    build: Callable[[dict[str, Any]], list[Op]]
    doc: str
    merge: bool = False
    #: writes its input blob unless told `inplace = false` (as the model zoo's files do)
    in_place: bool = False
    #: the tensors it reads from a list cursor, in Caffe's bottom order, as `from` lists them
    #: (`[data, reference]`; the fewest it takes): its messages name them
    reads: str = ""
    #: how many blobs it writes, from its arguments, where its op leaves that to the DSL (split)
    tops: Callable[[dict[str, Any]], int] | None = None


class ArgumentError(ValueError):
    """A DSL argument has the wrong type or value; the message names it."""


def pair(value: Any) -> tuple[int, int]:
    """A DSL `pair` argument (an int, or [h, w]) as (h, w)."""
    return (value, value) if isinstance(value, int) else (value[0], value[1])


# ----- parameter blobs --------------------------------------------------------------------

#: How `archc weights --init` fills a blob: He-normal over the fan-in of axes 1.. (weights),
#: zeros (biases, means), ones (variances, scales, BatchNorm's moving-average factor), quarters
#: (PReLU's slopes, Caffe's default filler for them).
FILLERS = ("he_normal", "zeros", "ones", "quarters")


@dataclass(frozen=True)
class ParamBlob:
    shape: Shape
    filler: str


# ----- Caffe fields -----------------------------------------------------------------------

def caffe(default: Any = dataclasses.MISSING, name: str | None = None, *,
          always: bool = False) -> Any:
    """A dataclass field that is the Caffe field `name` (the attribute's own name if None) of the
    op's `*_param` message, with Caffe's default (none: a required field, always written);
    `always` writes it even at its default."""
    return dataclasses.field(default=default, metadata={"caffe": name, "always": always})


def caffe_field_names(op_class: type[Op]) -> dict[str, str]:
    """attribute -> Caffe field name, for every `caffe()` field of an op definition."""
    return {field.attribute: field.name for field in op_class._caffe_fields}


class CaffeField(NamedTuple):
    """A `caffe()` field of an op definition, as writing the op reads it."""

    attribute: str
    name: str      # in the `*_param` message
    default: Any
    always: bool   # written even at its default


def short_float(value: float) -> float:
    """The shortest decimal that is the same float32 (protobuf stores Caffe's floats as float32)."""
    target = struct.pack("<f", value)
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("<f", candidate) == target:
            return candidate
    return value


def read_field(params: Any, name: str) -> Any:
    """A field of a parsed `*_param` message as an op holds it: enums by name, floats shortened,
    repeated fields as tuples."""
    descriptor = params.DESCRIPTOR.fields_by_name[name]
    value = getattr(params, name)

    def scalar(item: Any) -> Any:
        _check_c_int(descriptor, item)
        if descriptor.enum_type is not None:
            return descriptor.enum_type.values_by_number[item].name
        if descriptor.type == descriptor.TYPE_FLOAT:
            return short_float(item)
        return item
    return tuple(scalar(v) for v in value) if descriptor.is_repeated else scalar(value)


def read_pair(params: Any, name: str, default: int | None) -> tuple[int, int] | None:
    """A (height, width) setting spelled `name` (single or repeated) or `name_h`/`name_w`."""
    base = "kernel" if name == "kernel_size" else name
    fields = params.DESCRIPTOR.fields_by_name
    has_hw = f"{base}_h" in fields and (params.HasField(f"{base}_h") or params.HasField(f"{base}_w"))
    if fields[name].is_repeated:
        values = list(getattr(params, name))
    else:
        values = [getattr(params, name)] if params.HasField(name) else []
    for value in values:
        _check_c_int(fields[name], value)
    if has_hw:
        if values:
            raise ValueError(f"give either {name} or {base}_h/{base}_w, not both")
        for side in (f"{base}_h", f"{base}_w"):
            _check_c_int(fields[side], getattr(params, side))
        return getattr(params, f"{base}_h"), getattr(params, f"{base}_w")
    if not values:
        return None if default is None else (default, default)
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise UnsupportedSetting(f"{name} has {len(values)} values; only 2-D (one or two values) is "
                             f"supported")


def _check_c_int(descriptor: Any, value: Any) -> None:
    """Caffe keeps its unsigned sizes (kernel, stride, num_output, ...) in C ints: a larger value
    turns negative there, and Caffe aborts or computes nonsense."""
    if descriptor.type in (descriptor.TYPE_UINT32, descriptor.TYPE_UINT64) and value > INT_MAX:
        raise ValueError(f"{descriptor.name}: {value} is beyond {INT_MAX}, the largest value "
                         f"Caffe holds")


def write_pair(fields: dict, name: str, h: int, w: int, default: int | None) -> None:
    """Caffe spells square values as `name` and rectangular ones as `name_h`/`name_w`."""
    base = "kernel" if name == "kernel_size" else name
    if h == w:
        if h != default:
            fields[name] = h
    else:
        fields[f"{base}_h"] = h
        fields[f"{base}_w"] = w


def require(condition: bool, message: str) -> None:
    """An importer's check of what Caffe checks too: a ValueError the importer reports at the
    layer."""
    if not condition:
        raise ValueError(message)


class UnsupportedSetting(ValueError):
    """A setting Caffe runs that archc does not model (N-D convolution, ...): only Caffe itself
    can judge a net with one."""


def supported(condition: bool, message: str) -> None:
    if not condition:
        raise UnsupportedSetting(message)


# ----- the base -----------------------------------------------------------------------------

def definition(cls: type) -> type:
    """The decorator of every op definition: a dataclass, immutable as a frozen one is, whose
    `__init__`, equality, hash, repr and immutability come from `Op`. One generic implementation
    of each: `dataclass` generates them per class by compiling source (`frozen=True` alone two
    functions), which was most of what importing the op definitions costs, and every compile
    pays it; and the `__init__` it generates would set each field through `Op.__setattr__`."""
    # dataclass documents a class without a docstring by computing its signature: a tenth of
    # what making the definitions costs
    cls.__doc__ = cls.__doc__ or f"Caffe's {cls.caffe_type} layer."
    cls = dataclass(init=False, eq=False, repr=False)(cls)
    fields = dataclasses.fields(cls)
    if any(field.default_factory is not dataclasses.MISSING or not field.init for field in fields):
        raise TypeError(f"{cls.__name__}: an op's fields take plain defaults (see Op.__init__)")
    cls._field_order = tuple(field.name for field in fields)
    cls._defaults = {field.name: field.default for field in fields
                     if field.default is not dataclasses.MISSING}
    cls._caffe_fields = tuple(CaffeField(field.name, field.metadata["caffe"] or field.name,
                                         field.default, field.metadata["always"])
                              for field in fields if "caffe" in field.metadata)
    return cls


@definition
class Op:
    """Base of all op definitions (see the module docstring)."""

    caffe_type: ClassVar[str] = ""
    param_message: ClassVar[str | None] = None
    #: ops Caffe can run in place (top == bottom)
    in_place_ok: ClassVar[bool] = False
    #: ops whose top shares its bottom's memory in Caffe (a reshaped view, no copy)
    views_input: ClassVar[bool] = False
    min_bottoms: ClassVar[int] = 1
    max_bottoms: ClassVar[int | None] = 1
    min_tops: ClassVar[int] = 1
    #: whether Caffe has a backward pass into every bottom; without one, a forced backward pass
    #: (`archc time` forces one) aborts at the layer (NOT_IMPLEMENTED, or a CHECK on an index input)
    backward: ClassVar[bool] = True
    #: bottoms Caffe reads as indices: its forward pass aborts on other values (random inputs)
    index_bottoms: ClassVar[tuple[int, ...]] = ()
    primitives: ClassVar[tuple[Primitive, ...]] = ()
    #: built into the Caffe archc runs (False: a fork's type, declared in an .arch file)
    built_in: ClassVar[bool] = True
    #: the dataclass fields in order, and the defaults of those that have one (set by `definition`)
    _field_order: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}
    #: the `caffe()` fields, in order (set by `definition`: writing a layer reads them)
    _caffe_fields: ClassVar[tuple[CaffeField, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "caffe_type" in cls.__dict__ and cls.built_in:
            if cls.caffe_type in REGISTRY:
                raise TypeError(f"two op definitions for Caffe type {cls.caffe_type}")
            REGISTRY[cls.caffe_type] = cls

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """The fields, as a dataclass takes them: in order, then by name; defaults for the rest."""
        names = self._field_order
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} has {len(names)} fields, got {len(args)} values")
        values = dict(zip(names, args))
        for name, value in kwargs.items():
            if name not in names:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            if name in values:
                raise TypeError(f"{type(self).__name__} got field {name!r} twice")
            values[name] = value
        if len(values) < len(names):
            for name in names:
                if name not in values:
                    if name not in self._defaults:
                        raise TypeError(f"{type(self).__name__} needs field {name!r}")
                    values[name] = self._defaults[name]
        self.__dict__.update(values)  # not through __setattr__, which refuses every assignment

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def _values(self) -> tuple:
        return tuple(getattr(self, field.name) for field in dataclasses.fields(self))

    def _kind(self) -> Any:
        """What makes two ops of equal values the same op: their definition."""
        return type(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Op) and other._kind() == self._kind() and \
            self._values() == other._values()

    def __hash__(self) -> int:
        return hash((self._kind(), self._values()))

    def __repr__(self) -> str:
        values = ", ".join(f"{field.name}={getattr(self, field.name)!r}"
                           for field in dataclasses.fields(self))
        return f"{type(self).__name__}({values})"

    # --- wiring and shapes

    def max_tops(self) -> int | None:
        """How many tops Caffe lets this layer write (None: any number)."""
        return 1

    def top_count(self, bottoms: int) -> int | None:
        """How many tops the op writes, reading `bottoms`, when the DSL names none (None: as many
        as named, else one)."""
        return 1

    def infer(self, inputs: list[Shape], tops: int) -> tuple[Shape, ...]:
        """The shape of each of `tops` tops; raises ShapeError. Single-output ops define
        `output_shape` (extra tops, like Pooling's mask, have the output's shape)."""
        return (self.output_shape(inputs),) * tops

    def output_shape(self, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def cpu_forward(self) -> bool:
        """Whether a CPU-only Caffe has this layer's forward pass (else it aborts running it)."""
        return True

    def is_view(self, bottoms: int, tops: int) -> bool:
        """Whether Caffe's tops share the first bottom's memory: writing one writes the others."""
        return self.views_input

    def param_blobs(self, inputs: list[Shape]) -> tuple[ParamBlob, ...]:
        """The learnable/stored blobs Caffe allocates for this layer, in order."""
        return ()

    def param_shapes(self, inputs: list[Shape]) -> list[Shape]:
        return [blob.shape for blob in self.param_blobs(inputs)]

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        """Multiply-accumulates for one image (batch dimension divided out)."""
        return 0

    # --- Caffe's spelling

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        """The layer's `<type>_param` fields, non-default values only, Caffe's spelling."""
        fields: dict = {}
        for field in self._caffe_fields:
            value = getattr(self, field.attribute)
            if field.always or value != field.default:
                fields[field.name] = list(value) if isinstance(value, tuple) else value
        return fields

    @classmethod
    def from_caffe(cls, layer: Any, dialect: str) -> Op:
        """The op of a parsed LayerParameter of this type, Caffe's defaults applied; raises
        ValueError for settings archc does not model."""
        if cls.param_message is None:
            return cls()
        params = getattr(layer, cls.param_message)
        return cls(**{attribute: read_field(params, name)
                      for attribute, name in caffe_field_names(cls).items()})


# ----- shape helpers shared by the definitions ------------------------------------------------

def format_shape(shape: Shape) -> str:
    return " x ".join(str(d) for d in shape)


def checked_4d(op: str, shape: Shape) -> Shape:
    if len(shape) != 4:
        raise ShapeError(f"{op} needs a 4-D N x C x H x W input, got {format_shape(shape)}")
    return shape


def channels(shape: Shape) -> int:
    if len(shape) < 2:
        raise ShapeError(f"needs an input with a channel axis, got {format_shape(shape)}")
    return shape[1]


def at_most_4d(op: str, shape: Shape) -> Shape:
    """Caffe reads some inputs through its legacy num/channels/height/width accessors, which abort
    on more than 4 axes (and count missing trailing axes as 1)."""
    if len(shape) > 4:
        raise ShapeError(f"{op} reads its input as N x C x H x W: it takes at most 4 axes, got "
                         f"{format_shape(shape)}")
    return shape


def axis_index(axis: int, shape: Shape, op: str) -> int:
    index = axis + len(shape) if axis < 0 else axis
    if not 0 <= index < len(shape):
        raise ShapeError(f"{op} axis {axis} is out of range for a {len(shape)}-D input: give one "
                         f"from {-len(shape)} to {len(shape) - 1} (negative counts from the end)")
    return index


def truncated(numerator: int, denominator: int) -> int:
    """Integer division rounding toward zero, as C's `/` does."""
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient


def float32(value: float) -> float:
    """`value` rounded to the nearest float32 (a float64 quotient of float32 operands rounded this
    way is exactly the float32 quotient)."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def check_spatial(op: str, before: tuple[int, int], after: tuple[int, int]) -> None:
    if min(after) <= 0:
        raise ShapeError(
            f"{op} output would be {after[0]} x {after[1]} from a {before[0]} x {before[1]} input: "
            f"use a larger input size, a smaller kernel or stride, or more padding")


prod = math.prod
