"""The subset of Caffe's protobuf schema archc needs, described as data and built at run time.

archc must read and validate prototxt and .caffemodel files without Caffe installed, so it carries
its own description of `caffe.proto`: the messages, field names, numbers, types, labels, defaults
and enums that deploy networks use. Field numbers are Caffe's own, so binary .caffemodel files
decode with these classes too (fields outside the subset are kept as unknown fields).

Two dialects differ in one field, number 13 of `PoolingParameter`:
- "ceil_mode": the OpenCV / caffe-fork spelling, `optional bool ceil_mode = 13 [default = true]`,
  used by the reference model zoo;
- "round_mode": BVLC master, `optional RoundMode round_mode = 13 [default = CEIL]`.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.message import DecodeError, Message

from archc.errors import ArchError, Span

DIALECTS = ("ceil_mode", "round_mode")
PACKAGE = "caffe"
# Every `*_param` field of Caffe's LayerParameter (BVLC master, as built): a file may use one
# that this subset leaves out, for a layer type archc does not model.
CAFFE_LAYER_PARAMS = frozenset({
    "accuracy_param", "argmax_param", "batch_norm_param", "bias_param", "clip_param",
    "concat_param", "contrastive_loss_param", "convolution_param", "crop_param", "data_param",
    "dropout_param", "dummy_data_param", "eltwise_param", "elu_param", "embed_param", "exp_param",
    "flatten_param", "hdf5_data_param", "hdf5_output_param", "hinge_loss_param",
    "image_data_param", "infogain_loss_param", "inner_product_param", "input_param", "log_param",
    "loss_param", "lrn_param", "memory_data_param", "mvn_param", "parameter_param",
    "pooling_param", "power_param", "prelu_param", "python_param", "recurrent_param",
    "reduction_param", "relu_param", "reshape_param", "scale_param", "sigmoid_param",
    "slice_param", "softmax_param", "spp_param", "swish_param", "tanh_param", "threshold_param",
    "tile_param", "transform_param", "window_data_param"})
_NO_SUCH_LAYER_FIELD = re.compile(r'Message type "caffe\.LayerParameter" has no field named "(\w+)"')
_LAYER_START = re.compile(r"^[ \t]*layers?\s*\{", re.MULTILINE)


class FieldSpec(NamedTuple):
    label: str          # "optional" or "repeated"
    type: str           # a scalar type below, or the name of a message or enum
    name: str
    number: int
    default: object = None
    packed: bool = False


class MessageSpec(NamedTuple):
    fields: tuple[FieldSpec, ...]
    enums: dict[str, dict[str, int]] = {}


def _f(label: str, type_: str, name: str, number: int, default: object = None,
       packed: bool = False) -> FieldSpec:
    return FieldSpec(label, type_, name, number, default, packed)


def _opt(type_: str, name: str, number: int, default: object = None) -> FieldSpec:
    return _f("optional", type_, name, number, default)


def _rep(type_: str, name: str, number: int, packed: bool = False) -> FieldSpec:
    return _f("repeated", type_, name, number, packed=packed)


def _enum(*names: str) -> dict[str, int]:
    """An enum whose values count from 0 in declaration order, as most of Caffe's do."""
    return {name: number for number, name in enumerate(names)}


_ENGINE = _enum("DEFAULT", "CAFFE", "CUDNN")

_TOP_LEVEL_ENUMS: dict[str, dict[str, int]] = {"Phase": _enum("TRAIN", "TEST")}

_COMMON_MESSAGES: dict[str, MessageSpec] = {
    "BlobShape": MessageSpec((_rep("int64", "dim", 1, packed=True),)),
    "BlobProto": MessageSpec((
        _opt("BlobShape", "shape", 7),
        _rep("float", "data", 5, packed=True),
        _rep("float", "diff", 6, packed=True),
        _rep("double", "double_data", 8, packed=True),
        _rep("double", "double_diff", 9, packed=True),
        _opt("int32", "num", 1, 0),
        _opt("int32", "channels", 2, 0),
        _opt("int32", "height", 3, 0),
        _opt("int32", "width", 4, 0),
    )),
    "FillerParameter": MessageSpec((
        _opt("string", "type", 1, "constant"),
        _opt("float", "value", 2, 0),
        _opt("float", "min", 3, 0),
        _opt("float", "max", 4, 1),
        _opt("float", "mean", 5, 0),
        _opt("float", "std", 6, 1),
        _opt("int32", "sparse", 7, -1),
        _opt("VarianceNorm", "variance_norm", 8, "FAN_IN"),
    ), {"VarianceNorm": _enum("FAN_IN", "FAN_OUT", "AVERAGE")}),
    "NetParameter": MessageSpec((
        _opt("string", "name", 1),
        _rep("string", "input", 3),
        _rep("BlobShape", "input_shape", 8),
        _rep("int32", "input_dim", 4),
        _opt("bool", "force_backward", 5, False),
        _opt("NetState", "state", 6),
        _opt("bool", "debug_info", 7, False),
        _rep("LayerParameter", "layer", 100),
        _rep("V1LayerParameter", "layers", 2),
    )),
    "NetState": MessageSpec((
        _opt("Phase", "phase", 1, "TEST"),
        _opt("int32", "level", 2, 0),
        _rep("string", "stage", 3),
    )),
    "NetStateRule": MessageSpec((
        _opt("Phase", "phase", 1),
        _opt("int32", "min_level", 2),
        _opt("int32", "max_level", 3),
        _rep("string", "stage", 4),
        _rep("string", "not_stage", 5),
    )),
    "ParamSpec": MessageSpec((
        _opt("string", "name", 1),
        _opt("DimCheckMode", "share_mode", 2),
        _opt("float", "lr_mult", 3, 1.0),
        _opt("float", "decay_mult", 4, 1.0),
    ), {"DimCheckMode": _enum("STRICT", "PERMISSIVE")}),
    "LayerParameter": MessageSpec((
        _opt("string", "name", 1),
        _opt("string", "type", 2),
        _rep("string", "bottom", 3),
        _rep("string", "top", 4),
        _opt("Phase", "phase", 10),
        _rep("float", "loss_weight", 5),
        _rep("ParamSpec", "param", 6),
        _rep("BlobProto", "blobs", 7),
        _rep("bool", "propagate_down", 11),
        _rep("NetStateRule", "include", 8),
        _rep("NetStateRule", "exclude", 9),
        _opt("BatchNormParameter", "batch_norm_param", 139),
        _opt("BiasParameter", "bias_param", 141),
        _opt("ConcatParameter", "concat_param", 104),
        _opt("ConvolutionParameter", "convolution_param", 106),
        _opt("DropoutParameter", "dropout_param", 108),
        _opt("EltwiseParameter", "eltwise_param", 110),
        _opt("FlattenParameter", "flatten_param", 135),
        _opt("InnerProductParameter", "inner_product_param", 117),
        _opt("InputParameter", "input_param", 143),
        _opt("LRNParameter", "lrn_param", 118),
        _opt("PoolingParameter", "pooling_param", 121),
        _opt("PReLUParameter", "prelu_param", 131),
        _opt("ReLUParameter", "relu_param", 123),
        _opt("ReshapeParameter", "reshape_param", 133),
        _opt("ScaleParameter", "scale_param", 142),
        _opt("SliceParameter", "slice_param", 126),
        _opt("SoftmaxParameter", "softmax_param", 125),
    )),
    # The pre-2015 layer format, still found in old .caffemodel files: only what loading
    # weights by name needs.
    "V1LayerParameter": MessageSpec((
        _rep("string", "bottom", 2),
        _rep("string", "top", 3),
        _opt("string", "name", 4),
        _rep("NetStateRule", "include", 32),
        _rep("NetStateRule", "exclude", 33),
        _opt("LayerType", "type", 5),
        _rep("BlobProto", "blobs", 6),
    ), {"LayerType": {
        "NONE": 0, "ABSVAL": 35, "ACCURACY": 1, "ARGMAX": 30, "BNLL": 2, "CONCAT": 3,
        "CONTRASTIVE_LOSS": 37, "CONVOLUTION": 4, "DATA": 5, "DECONVOLUTION": 39, "DROPOUT": 6,
        "DUMMY_DATA": 32, "EUCLIDEAN_LOSS": 7, "ELTWISE": 25, "EXP": 38, "FLATTEN": 8,
        "HDF5_DATA": 9, "HDF5_OUTPUT": 10, "HINGE_LOSS": 28, "IM2COL": 11, "IMAGE_DATA": 12,
        "INFOGAIN_LOSS": 13, "INNER_PRODUCT": 14, "LRN": 15, "MEMORY_DATA": 29,
        "MULTINOMIAL_LOGISTIC_LOSS": 16, "MVN": 34, "POOLING": 17, "POWER": 26, "RELU": 18,
        "SIGMOID": 19, "SIGMOID_CROSS_ENTROPY_LOSS": 27, "SILENCE": 36, "SOFTMAX": 20,
        "SOFTMAX_LOSS": 21, "SPLIT": 22, "SLICE": 33, "TANH": 23, "WINDOW_DATA": 24,
        "THRESHOLD": 31}}),
    "BatchNormParameter": MessageSpec((
        _opt("bool", "use_global_stats", 1),
        _opt("float", "moving_average_fraction", 2, 0.999),
        _opt("float", "eps", 3, 1e-5),
    )),
    "BiasParameter": MessageSpec((
        _opt("int32", "axis", 1, 1),
        _opt("int32", "num_axes", 2, 1),
        _opt("FillerParameter", "filler", 3),
    )),
    "ConcatParameter": MessageSpec((
        _opt("int32", "axis", 2, 1),
        _opt("uint32", "concat_dim", 1, 1),
    )),
    "ConvolutionParameter": MessageSpec((
        _opt("uint32", "num_output", 1),
        _opt("bool", "bias_term", 2, True),
        _rep("uint32", "pad", 3),
        _rep("uint32", "kernel_size", 4),
        _rep("uint32", "stride", 6),
        _rep("uint32", "dilation", 18),
        _opt("uint32", "pad_h", 9, 0),
        _opt("uint32", "pad_w", 10, 0),
        _opt("uint32", "kernel_h", 11),
        _opt("uint32", "kernel_w", 12),
        _opt("uint32", "stride_h", 13),
        _opt("uint32", "stride_w", 14),
        _opt("uint32", "group", 5, 1),
        _opt("FillerParameter", "weight_filler", 7),
        _opt("FillerParameter", "bias_filler", 8),
        _opt("Engine", "engine", 15, "DEFAULT"),
        _opt("int32", "axis", 16, 1),
        _opt("bool", "force_nd_im2col", 17, False),
    ), {"Engine": _ENGINE}),
    "DropoutParameter": MessageSpec((_opt("float", "dropout_ratio", 1, 0.5),)),
    "EltwiseParameter": MessageSpec((
        _opt("EltwiseOp", "operation", 1, "SUM"),
        _rep("float", "coeff", 2),
        _opt("bool", "stable_prod_grad", 3, True),
    ), {"EltwiseOp": _enum("PROD", "SUM", "MAX")}),
    "FlattenParameter": MessageSpec((
        _opt("int32", "axis", 1, 1),
        _opt("int32", "end_axis", 2, -1),
    )),
    "InnerProductParameter": MessageSpec((
        _opt("uint32", "num_output", 1),
        _opt("bool", "bias_term", 2, True),
        _opt("FillerParameter", "weight_filler", 3),
        _opt("FillerParameter", "bias_filler", 4),
        _opt("int32", "axis", 5, 1),
        _opt("bool", "transpose", 6, False),
    )),
    "InputParameter": MessageSpec((_rep("BlobShape", "shape", 1),)),
    "LRNParameter": MessageSpec((
        _opt("uint32", "local_size", 1, 5),
        _opt("float", "alpha", 2, 1.0),
        _opt("float", "beta", 3, 0.75),
        _opt("NormRegion", "norm_region", 4, "ACROSS_CHANNELS"),
        _opt("float", "k", 5, 1.0),
        _opt("Engine", "engine", 6, "DEFAULT"),
    ), {"NormRegion": _enum("ACROSS_CHANNELS", "WITHIN_CHANNEL"), "Engine": _ENGINE}),
    "PReLUParameter": MessageSpec((
        _opt("FillerParameter", "filler", 1),
        _opt("bool", "channel_shared", 2, False),
    )),
    "ReLUParameter": MessageSpec((
        _opt("float", "negative_slope", 1, 0),
        _opt("Engine", "engine", 2, "DEFAULT"),
    ), {"Engine": _ENGINE}),
    "ReshapeParameter": MessageSpec((
        _opt("BlobShape", "shape", 1),
        _opt("int32", "axis", 2, 0),
        _opt("int32", "num_axes", 3, -1),
    )),
    "ScaleParameter": MessageSpec((
        _opt("int32", "axis", 1, 1),
        _opt("int32", "num_axes", 2, 1),
        _opt("FillerParameter", "filler", 3),
        _opt("bool", "bias_term", 4, False),
        _opt("FillerParameter", "bias_filler", 5),
    )),
    "SliceParameter": MessageSpec((
        _opt("int32", "axis", 3, 1),
        _rep("uint32", "slice_point", 2),
        _opt("uint32", "slice_dim", 1, 1),
    )),
    "SoftmaxParameter": MessageSpec((
        _opt("Engine", "engine", 1, "DEFAULT"),
        _opt("int32", "axis", 2, 1),
    ), {"Engine": _ENGINE}),
}

_POOLING_FIELDS = (
    _opt("PoolMethod", "pool", 1, "MAX"),
    _opt("uint32", "pad", 4, 0),
    _opt("uint32", "pad_h", 9, 0),
    _opt("uint32", "pad_w", 10, 0),
    _opt("uint32", "kernel_size", 2),
    _opt("uint32", "kernel_h", 5),
    _opt("uint32", "kernel_w", 6),
    _opt("uint32", "stride", 3, 1),
    _opt("uint32", "stride_h", 7),
    _opt("uint32", "stride_w", 8),
    _opt("Engine", "engine", 11, "DEFAULT"),
    _opt("bool", "global_pooling", 12, False),
)
_POOLING_ENUMS = {"PoolMethod": _enum("MAX", "AVE", "STOCHASTIC"), "Engine": _ENGINE}

_POOLING_BY_DIALECT: dict[str, MessageSpec] = {
    "ceil_mode": MessageSpec(_POOLING_FIELDS + (_opt("bool", "ceil_mode", 13, True),),
                             _POOLING_ENUMS),
    "round_mode": MessageSpec(_POOLING_FIELDS + (_opt("RoundMode", "round_mode", 13, "CEIL"),),
                              {**_POOLING_ENUMS, "RoundMode": _enum("CEIL", "FLOOR")}),
}

_FDP = descriptor_pb2.FieldDescriptorProto
_SCALAR_TYPES = {
    "double": _FDP.TYPE_DOUBLE, "float": _FDP.TYPE_FLOAT, "int64": _FDP.TYPE_INT64,
    "uint64": _FDP.TYPE_UINT64, "int32": _FDP.TYPE_INT32, "uint32": _FDP.TYPE_UINT32,
    "bool": _FDP.TYPE_BOOL, "string": _FDP.TYPE_STRING, "bytes": _FDP.TYPE_BYTES,
}
_LABELS = {"optional": _FDP.LABEL_OPTIONAL, "repeated": _FDP.LABEL_REPEATED}


def schema_messages(dialect: str) -> dict[str, MessageSpec]:
    """Every message of the dialect, by name (the data the classes are built from)."""
    _check_dialect(dialect)
    return {**_COMMON_MESSAGES, "PoolingParameter": _POOLING_BY_DIALECT[dialect]}


def _check_dialect(dialect: str) -> None:
    if dialect not in DIALECTS:
        raise ValueError(f"unknown Caffe dialect {dialect!r}: expected one of {', '.join(DIALECTS)}")


def _default_text(value: object) -> str:
    """protobuf descriptors store defaults as text: bools lower-case, enums by value name."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _file_descriptor(dialect: str) -> descriptor_pb2.FileDescriptorProto:
    messages = schema_messages(dialect)
    file_proto = descriptor_pb2.FileDescriptorProto(
        name=f"archc_caffe_{dialect}.proto", package=PACKAGE, syntax="proto2")
    for enum_name, values in _TOP_LEVEL_ENUMS.items():
        _add_enum(file_proto.enum_type.add(), enum_name, values)
    for message_name, spec in messages.items():
        message_proto = file_proto.message_type.add(name=message_name)
        for enum_name, values in spec.enums.items():
            _add_enum(message_proto.enum_type.add(), enum_name, values)
        for field in spec.fields:
            field_proto = message_proto.field.add(name=field.name, number=field.number,
                                                  label=_LABELS[field.label])
            if field.type in _SCALAR_TYPES:
                field_proto.type = _SCALAR_TYPES[field.type]
            elif field.type in spec.enums:
                field_proto.type = _FDP.TYPE_ENUM
                field_proto.type_name = f".{PACKAGE}.{message_name}.{field.type}"
            elif field.type in _TOP_LEVEL_ENUMS:
                field_proto.type = _FDP.TYPE_ENUM
                field_proto.type_name = f".{PACKAGE}.{field.type}"
            elif field.type in messages:
                field_proto.type = _FDP.TYPE_MESSAGE
                field_proto.type_name = f".{PACKAGE}.{field.type}"
            else:
                raise AssertionError(f"{message_name}.{field.name}: unknown type {field.type}")
            if field.default is not None:
                field_proto.default_value = _default_text(field.default)
            if field.packed:
                field_proto.options.packed = True
    return file_proto


def _add_enum(enum_proto: descriptor_pb2.EnumDescriptorProto, name: str,
              values: dict[str, int]) -> None:
    enum_proto.name = name
    for value_name, number in values.items():
        enum_proto.value.add(name=value_name, number=number)


@lru_cache(maxsize=None)
def _pool(dialect: str) -> descriptor_pool.DescriptorPool:
    # One pool per dialect: both define caffe.PoolingParameter, differently.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file_descriptor(dialect))
    return pool


def message_class(name: str, dialect: str = "ceil_mode") -> type[Message]:
    """The generated class of the Caffe message `name` (e.g. "LayerParameter") in a dialect."""
    _check_dialect(dialect)
    return message_factory.GetMessageClass(_pool(dialect).FindMessageTypeByName(f"{PACKAGE}.{name}"))


def net_parameter_class(dialect: str = "ceil_mode") -> type[Message]:
    return message_class("NetParameter", dialect)


def parse_prototxt(text: str, dialect: str = "ceil_mode", path: str = "<prototxt>") -> Message:
    """Parse prototxt text into a NetParameter; syntax errors and unknown fields raise ArchError
    at their line and column, naming the field."""
    net = net_parameter_class(dialect)()
    try:
        text_format.Parse(text, net)
    except text_format.ParseError as error:
        line, column = error.GetLine(), error.GetColumn()
        message = str(error)
        prefix = f"{line}:{column} : "
        if message.startswith(prefix):
            message = message[len(prefix):]
        span = Span(path, line, column) if line else None
        unmodelled = _NO_SUCH_LAYER_FIELD.search(message)
        if unmodelled and unmodelled.group(1) in CAFFE_LAYER_PARAMS and line:
            raise ArchError(_unmodelled_layer(text, line, unmodelled.group(1)), span) from None
        raise ArchError(f"not a valid Caffe prototxt ({dialect} dialect): {message}", span) from None
    return net


def _unmodelled_layer(text: str, line: int, field: str) -> str:
    """The message for a standard Caffe `*_param` this subset does not carry: it belongs to a
    layer type archc does not model, which is named, with the layer, from the text before it."""
    before = "\n".join(text.split("\n")[:line])
    starts = list(_LAYER_START.finditer(before))
    block = before[starts[-1].start():] if starts else before
    name = re.search(r'\bname\s*:\s*"([^"]*)"', block)
    kind = re.search(r'\btype\s*:\s*"?(\w+)', block)
    layer = f"layer '{name.group(1)}'" if name else "a layer"
    what = f"has type '{kind.group(1)}', which" if kind else "uses a layer type that"
    return f"{layer} {what} archc does not model (its {field} cannot be read)"


def parse_caffemodel(data: bytes, dialect: str = "ceil_mode", path: str = "<caffemodel>") -> Message:
    """Decode a binary .caffemodel (a serialised NetParameter with weights in `blobs`)."""
    net = net_parameter_class(dialect)()
    try:
        net.ParseFromString(data)
    except DecodeError as error:
        raise ArchError(f"{path}: not a Caffe model file: {error}") from None
    return net
