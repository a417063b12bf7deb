"""Caffe's protobuf schema for networks, described as data and built at run time.

archc must read and validate prototxt and .caffemodel files without Caffe installed, so it carries
its own description of `caffe.proto`: the messages, field names, numbers, types, labels, defaults
and enums of a net and of every layer's `*_param` message (BVLC master's, as built: the training
layers' too, so any Caffe file parses and the importer can name what it refuses). Field numbers
are Caffe's own, so binary .caffemodel files decode with these classes too (fields outside the
schema, such as a solver's, are kept as unknown fields).

Two dialects differ in one field, number 13 of `PoolingParameter`:
- "ceil_mode": the OpenCV / caffe-fork spelling, `optional bool ceil_mode = 13 [default = true]`,
  used by the reference model zoo;
- "round_mode": BVLC master, `optional RoundMode round_mode = 13 [default = CEIL]`.
"""
from __future__ import annotations

import dataclasses
import re
from functools import lru_cache
from typing import NamedTuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.message import DecodeError, Message

from archc.errors import ArchError, Span
from archc.ir.ops.fork import FIELD_KINDS

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
_NO_SUCH_LAYER_FIELD = re.compile(
    r'Message type "caffe\.(?:V1)?LayerParameter" has no field named "(\w+)"')
_V1_TYPE_ENUM = 'Enum type "caffe.V1LayerParameter.LayerType"'
_LAYER_START = re.compile(r"^[ \t]*layers?\s*\{", re.MULTILINE)


class FieldSpec(NamedTuple):
    label: str          # "optional", "required" (Caffe cannot read a file without it) or "repeated"
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


def _req(type_: str, name: str, number: int) -> FieldSpec:
    return _f("required", type_, name, number)


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
        # every layer type's parameters, by field number
        _opt("TransformationParameter", "transform_param", 100),
        _opt("LossParameter", "loss_param", 101),
        _opt("AccuracyParameter", "accuracy_param", 102),
        _opt("ArgMaxParameter", "argmax_param", 103),
        _opt("ConcatParameter", "concat_param", 104),
        _opt("ContrastiveLossParameter", "contrastive_loss_param", 105),
        _opt("ConvolutionParameter", "convolution_param", 106),
        _opt("DataParameter", "data_param", 107),
        _opt("DropoutParameter", "dropout_param", 108),
        _opt("DummyDataParameter", "dummy_data_param", 109),
        _opt("EltwiseParameter", "eltwise_param", 110),
        _opt("ExpParameter", "exp_param", 111),
        _opt("HDF5DataParameter", "hdf5_data_param", 112),
        _opt("HDF5OutputParameter", "hdf5_output_param", 113),
        _opt("HingeLossParameter", "hinge_loss_param", 114),
        _opt("ImageDataParameter", "image_data_param", 115),
        _opt("InfogainLossParameter", "infogain_loss_param", 116),
        _opt("InnerProductParameter", "inner_product_param", 117),
        _opt("LRNParameter", "lrn_param", 118),
        _opt("MemoryDataParameter", "memory_data_param", 119),
        _opt("MVNParameter", "mvn_param", 120),
        _opt("PoolingParameter", "pooling_param", 121),
        _opt("PowerParameter", "power_param", 122),
        _opt("ReLUParameter", "relu_param", 123),
        _opt("SigmoidParameter", "sigmoid_param", 124),
        _opt("SoftmaxParameter", "softmax_param", 125),
        _opt("SliceParameter", "slice_param", 126),
        _opt("TanHParameter", "tanh_param", 127),
        _opt("ThresholdParameter", "threshold_param", 128),
        _opt("WindowDataParameter", "window_data_param", 129),
        _opt("PythonParameter", "python_param", 130),
        _opt("PReLUParameter", "prelu_param", 131),
        _opt("SPPParameter", "spp_param", 132),
        _opt("ReshapeParameter", "reshape_param", 133),
        _opt("LogParameter", "log_param", 134),
        _opt("FlattenParameter", "flatten_param", 135),
        _opt("ReductionParameter", "reduction_param", 136),
        _opt("EmbedParameter", "embed_param", 137),
        _opt("TileParameter", "tile_param", 138),
        _opt("BatchNormParameter", "batch_norm_param", 139),
        _opt("ELUParameter", "elu_param", 140),
        _opt("BiasParameter", "bias_param", 141),
        _opt("ScaleParameter", "scale_param", 142),
        _opt("InputParameter", "input_param", 143),
        _opt("CropParameter", "crop_param", 144),
        _opt("ParameterParameter", "parameter_param", 145),
        _opt("RecurrentParameter", "recurrent_param", 146),
        _opt("SwishParameter", "swish_param", 147),
        _opt("ClipParameter", "clip_param", 148),
    )),
    "ArgMaxParameter": MessageSpec((
        _opt("bool", "out_max_val", 1, False),
        _opt("uint32", "top_k", 2, 1),
        _opt("int32", "axis", 3),
    )),
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
    "ClipParameter": MessageSpec((
        _req("float", "min", 1),
        _req("float", "max", 2),
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
    "CropParameter": MessageSpec((
        _opt("int32", "axis", 1, 2),
        _rep("uint32", "offset", 2),
    )),
    "DropoutParameter": MessageSpec((_opt("float", "dropout_ratio", 1, 0.5),)),
    "EltwiseParameter": MessageSpec((
        _opt("EltwiseOp", "operation", 1, "SUM"),
        _rep("float", "coeff", 2),
        _opt("bool", "stable_prod_grad", 3, True),
    ), {"EltwiseOp": _enum("PROD", "SUM", "MAX")}),
    "ELUParameter": MessageSpec((_opt("float", "alpha", 1, 1.0),)),
    "EmbedParameter": MessageSpec((
        _opt("uint32", "num_output", 1),
        _opt("uint32", "input_dim", 2),
        _opt("bool", "bias_term", 3, True),
        _opt("FillerParameter", "weight_filler", 4),
        _opt("FillerParameter", "bias_filler", 5),
    )),
    "ExpParameter": MessageSpec((
        _opt("float", "base", 1, -1.0),
        _opt("float", "scale", 2, 1.0),
        _opt("float", "shift", 3, 0.0),
    )),
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
    "LogParameter": MessageSpec((
        _opt("float", "base", 1, -1.0),
        _opt("float", "scale", 2, 1.0),
        _opt("float", "shift", 3, 0.0),
    )),
    "LRNParameter": MessageSpec((
        _opt("uint32", "local_size", 1, 5),
        _opt("float", "alpha", 2, 1.0),
        _opt("float", "beta", 3, 0.75),
        _opt("NormRegion", "norm_region", 4, "ACROSS_CHANNELS"),
        _opt("float", "k", 5, 1.0),
        _opt("Engine", "engine", 6, "DEFAULT"),
    ), {"NormRegion": _enum("ACROSS_CHANNELS", "WITHIN_CHANNEL"), "Engine": _ENGINE}),
    "MVNParameter": MessageSpec((
        _opt("bool", "normalize_variance", 1, True),
        _opt("bool", "across_channels", 2, False),
        _opt("float", "eps", 3, 1e-9),
    )),
    "ParameterParameter": MessageSpec((_opt("BlobShape", "shape", 1),)),
    "PowerParameter": MessageSpec((
        _opt("float", "power", 1, 1.0),
        _opt("float", "scale", 2, 1.0),
        _opt("float", "shift", 3, 0.0),
    )),
    "PReLUParameter": MessageSpec((
        _opt("FillerParameter", "filler", 1),
        _opt("bool", "channel_shared", 2, False),
    )),
    "RecurrentParameter": MessageSpec((
        _opt("uint32", "num_output", 1, 0),
        _opt("FillerParameter", "weight_filler", 2),
        _opt("FillerParameter", "bias_filler", 3),
        _opt("bool", "debug_info", 4, False),
        _opt("bool", "expose_hidden", 5, False),
    )),
    "ReductionParameter": MessageSpec((
        _opt("ReductionOp", "operation", 1, "SUM"),
        _opt("int32", "axis", 2, 0),
        _opt("float", "coeff", 3, 1.0),
    ), {"ReductionOp": {"SUM": 1, "ASUM": 2, "SUMSQ": 3, "MEAN": 4}}),
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
    "SigmoidParameter": MessageSpec((_opt("Engine", "engine", 1, "DEFAULT"),), {"Engine": _ENGINE}),
    "SliceParameter": MessageSpec((
        _opt("int32", "axis", 3, 1),
        _rep("uint32", "slice_point", 2),
        _opt("uint32", "slice_dim", 1, 1),
    )),
    "SoftmaxParameter": MessageSpec((
        _opt("Engine", "engine", 1, "DEFAULT"),
        _opt("int32", "axis", 2, 1),
    ), {"Engine": _ENGINE}),
    "SPPParameter": MessageSpec((
        _opt("uint32", "pyramid_height", 1),
        _opt("PoolMethod", "pool", 2, "MAX"),
        _opt("Engine", "engine", 6, "DEFAULT"),
    ), {"PoolMethod": _enum("MAX", "AVE", "STOCHASTIC"), "Engine": _ENGINE}),
    "SwishParameter": MessageSpec((_opt("float", "beta", 1, 1.0),)),
    "TanHParameter": MessageSpec((_opt("Engine", "engine", 1, "DEFAULT"),), {"Engine": _ENGINE}),
    "ThresholdParameter": MessageSpec((_opt("float", "threshold", 1, 0.0),)),
    "TileParameter": MessageSpec((
        _opt("int32", "axis", 1, 1),
        _opt("int32", "tiles", 2),
    )),
}

# The parameters of training-only layers (data, losses, accuracy, HDF5 output) and of Python
# layers: archc reads them so that a training net parses, and refuses those layers by type.
_TRAINING_MESSAGES: dict[str, MessageSpec] = {
    "TransformationParameter": MessageSpec((
        _opt("float", "scale", 1, 1.0),
        _opt("bool", "mirror", 2, False),
        _opt("uint32", "crop_size", 3, 0),
        _opt("string", "mean_file", 4),
        _rep("float", "mean_value", 5),
        _opt("bool", "force_color", 6, False),
        _opt("bool", "force_gray", 7, False),
    )),
    "LossParameter": MessageSpec((
        _opt("int32", "ignore_label", 1),
        _opt("NormalizationMode", "normalization", 3, "VALID"),
        _opt("bool", "normalize", 2),
    ), {"NormalizationMode": _enum("FULL", "VALID", "BATCH_SIZE", "NONE")}),
    "AccuracyParameter": MessageSpec((
        _opt("uint32", "top_k", 1, 1),
        _opt("int32", "axis", 2, 1),
        _opt("int32", "ignore_label", 3),
    )),
    "ContrastiveLossParameter": MessageSpec((
        _opt("float", "margin", 1, 1.0),
        _opt("bool", "legacy_version", 2, False),
    )),
    "DataParameter": MessageSpec((
        _opt("string", "source", 1),
        _opt("uint32", "batch_size", 4),
        _opt("uint32", "rand_skip", 7, 0),
        _opt("DB", "backend", 8, "LEVELDB"),
        _opt("float", "scale", 2, 1.0),
        _opt("string", "mean_file", 3),
        _opt("uint32", "crop_size", 5, 0),
        _opt("bool", "mirror", 6, False),
        _opt("bool", "force_encoded_color", 9, False),
        _opt("uint32", "prefetch", 10, 4),
    ), {"DB": _enum("LEVELDB", "LMDB")}),
    "DummyDataParameter": MessageSpec((
        _rep("FillerParameter", "data_filler", 1),
        _rep("BlobShape", "shape", 6),
        _rep("uint32", "num", 2),
        _rep("uint32", "channels", 3),
        _rep("uint32", "height", 4),
        _rep("uint32", "width", 5),
    )),
    "HDF5DataParameter": MessageSpec((
        _opt("string", "source", 1),
        _opt("uint32", "batch_size", 2),
        _opt("bool", "shuffle", 3, False),
    )),
    "HDF5OutputParameter": MessageSpec((
        _opt("string", "file_name", 1),
    )),
    "HingeLossParameter": MessageSpec((
        _opt("Norm", "norm", 1, "L1"),
    ), {"Norm": {"L1": 1, "L2": 2}}),
    "ImageDataParameter": MessageSpec((
        _opt("string", "source", 1),
        _opt("uint32", "batch_size", 4, 1),
        _opt("uint32", "rand_skip", 7, 0),
        _opt("bool", "shuffle", 8, False),
        _opt("uint32", "new_height", 9, 0),
        _opt("uint32", "new_width", 10, 0),
        _opt("bool", "is_color", 11, True),
        _opt("float", "scale", 2, 1.0),
        _opt("string", "mean_file", 3),
        _opt("uint32", "crop_size", 5, 0),
        _opt("bool", "mirror", 6, False),
        _opt("string", "root_folder", 12, ""),
    )),
    "InfogainLossParameter": MessageSpec((
        _opt("string", "source", 1),
        _opt("int32", "axis", 2, 1),
    )),
    "MemoryDataParameter": MessageSpec((
        _opt("uint32", "batch_size", 1),
        _opt("uint32", "channels", 2),
        _opt("uint32", "height", 3),
        _opt("uint32", "width", 4),
    )),
    "WindowDataParameter": MessageSpec((
        _opt("string", "source", 1),
        _opt("float", "scale", 2, 1.0),
        _opt("string", "mean_file", 3),
        _opt("uint32", "batch_size", 4),
        _opt("uint32", "crop_size", 5, 0),
        _opt("bool", "mirror", 6, False),
        _opt("float", "fg_threshold", 7, 0.5),
        _opt("float", "bg_threshold", 8, 0.5),
        _opt("float", "fg_fraction", 9, 0.25),
        _opt("uint32", "context_pad", 10, 0),
        _opt("string", "crop_mode", 11, "warp"),
        _opt("bool", "cache_images", 12, False),
        _opt("string", "root_folder", 13, ""),
    )),
    "PythonParameter": MessageSpec((
        _opt("string", "module", 1),
        _opt("string", "layer", 2),
        _opt("string", "param_str", 3, ""),
        _opt("bool", "share_in_parallel", 4, False),
    )),
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

# ===== Legacy net formats: V0 and V1 layers, and the data-layer messages their upgrade writes =====
# Read by codegen/upgrade.py. Kept in one block, apart from the messages of the layer types archc
# models: V1LayerParameter is built from LayerParameter, so it carries every parameter message
# the schema has.


class LegacyParam(NamedTuple):
    message: str        # the parameter message's name
    v1_number: int      # the field's number in V1LayerParameter
    number: int         # and in LayerParameter


#: Every `*_param` field of Caffe's V1LayerParameter. A V1 layer carries those whose message this
#: schema has; in a .caffemodel the others stay unknown fields, which the upgrade renumbers.
V1_LAYER_PARAMS: dict[str, LegacyParam] = {
    "accuracy_param": LegacyParam("AccuracyParameter", 27, 102),
    "argmax_param": LegacyParam("ArgMaxParameter", 23, 103),
    "concat_param": LegacyParam("ConcatParameter", 9, 104),
    "contrastive_loss_param": LegacyParam("ContrastiveLossParameter", 40, 105),
    "convolution_param": LegacyParam("ConvolutionParameter", 10, 106),
    "data_param": LegacyParam("DataParameter", 11, 107),
    "dropout_param": LegacyParam("DropoutParameter", 12, 108),
    "dummy_data_param": LegacyParam("DummyDataParameter", 26, 109),
    "eltwise_param": LegacyParam("EltwiseParameter", 24, 110),
    "exp_param": LegacyParam("ExpParameter", 41, 111),
    "hdf5_data_param": LegacyParam("HDF5DataParameter", 13, 112),
    "hdf5_output_param": LegacyParam("HDF5OutputParameter", 14, 113),
    "hinge_loss_param": LegacyParam("HingeLossParameter", 29, 114),
    "image_data_param": LegacyParam("ImageDataParameter", 15, 115),
    "infogain_loss_param": LegacyParam("InfogainLossParameter", 16, 116),
    "inner_product_param": LegacyParam("InnerProductParameter", 17, 117),
    "lrn_param": LegacyParam("LRNParameter", 18, 118),
    "memory_data_param": LegacyParam("MemoryDataParameter", 22, 119),
    "mvn_param": LegacyParam("MVNParameter", 34, 120),
    "pooling_param": LegacyParam("PoolingParameter", 19, 121),
    "power_param": LegacyParam("PowerParameter", 21, 122),
    "relu_param": LegacyParam("ReLUParameter", 30, 123),
    "sigmoid_param": LegacyParam("SigmoidParameter", 38, 124),
    "softmax_param": LegacyParam("SoftmaxParameter", 39, 125),
    "slice_param": LegacyParam("SliceParameter", 31, 126),
    "tanh_param": LegacyParam("TanHParameter", 37, 127),
    "threshold_param": LegacyParam("ThresholdParameter", 25, 128),
    "window_data_param": LegacyParam("WindowDataParameter", 20, 129),
    "transform_param": LegacyParam("TransformationParameter", 36, 100),
    "loss_param": LegacyParam("LossParameter", 42, 101),
}

_V1_LAYER_FIELDS = (
    _rep("string", "bottom", 2),
    _rep("string", "top", 3),
    _opt("string", "name", 4),
    _rep("NetStateRule", "include", 32),
    _rep("NetStateRule", "exclude", 33),
    _opt("LayerType", "type", 5),
    _rep("BlobProto", "blobs", 6),
    _rep("string", "param", 1001),
    _rep("DimCheckMode", "blob_share_mode", 1002),
    _rep("float", "blobs_lr", 7),
    _rep("float", "weight_decay", 8),
    _rep("float", "loss_weight", 35),
    _opt("V0LayerParameter", "layer", 1),
)
_V1_LAYER_ENUMS = {
    "LayerType": {
        "NONE": 0, "ABSVAL": 35, "ACCURACY": 1, "ARGMAX": 30, "BNLL": 2, "CONCAT": 3,
        "CONTRASTIVE_LOSS": 37, "CONVOLUTION": 4, "DATA": 5, "DECONVOLUTION": 39, "DROPOUT": 6,
        "DUMMY_DATA": 32, "EUCLIDEAN_LOSS": 7, "ELTWISE": 25, "EXP": 38, "FLATTEN": 8,
        "HDF5_DATA": 9, "HDF5_OUTPUT": 10, "HINGE_LOSS": 28, "IM2COL": 11, "IMAGE_DATA": 12,
        "INFOGAIN_LOSS": 13, "INNER_PRODUCT": 14, "LRN": 15, "MEMORY_DATA": 29,
        "MULTINOMIAL_LOGISTIC_LOSS": 16, "MVN": 34, "POOLING": 17, "POWER": 26, "RELU": 18,
        "SIGMOID": 19, "SIGMOID_CROSS_ENTROPY_LOSS": 27, "SILENCE": 36, "SOFTMAX": 20,
        "SOFTMAX_LOSS": 21, "SPLIT": 22, "SLICE": 33, "TANH": 23, "WINDOW_DATA": 24,
        "THRESHOLD": 31},
    "DimCheckMode": _enum("STRICT", "PERMISSIVE"),
}


def _v1_layer_message(layer_message: MessageSpec) -> MessageSpec:
    """V1LayerParameter, with a `*_param` field for each that LayerParameter (`layer_message`)
    has."""
    carried = {field.name for field in layer_message.fields}
    params = tuple(_opt(param.message, name, param.v1_number)
                   for name, param in V1_LAYER_PARAMS.items() if name in carried)
    return MessageSpec(_V1_LAYER_FIELDS + params, _V1_LAYER_ENUMS)


_LEGACY_MESSAGES: dict[str, MessageSpec] = {
    "V0LayerParameter": MessageSpec((
        _opt("string", "name", 1),
        _opt("string", "type", 2),
        _opt("uint32", "num_output", 3),
        _opt("bool", "biasterm", 4, True),
        _opt("FillerParameter", "weight_filler", 5),
        _opt("FillerParameter", "bias_filler", 6),
        _opt("uint32", "pad", 7, 0),
        _opt("uint32", "kernelsize", 8),
        _opt("uint32", "group", 9, 1),
        _opt("uint32", "stride", 10, 1),
        _opt("PoolMethod", "pool", 11, "MAX"),
        _opt("float", "dropout_ratio", 12, 0.5),
        _opt("uint32", "local_size", 13, 5),
        _opt("float", "alpha", 14, 1.0),
        _opt("float", "beta", 15, 0.75),
        _opt("float", "k", 22, 1.0),
        _opt("string", "source", 16),
        _opt("float", "scale", 17, 1.0),
        _opt("string", "meanfile", 18),
        _opt("uint32", "batchsize", 19),
        _opt("uint32", "cropsize", 20, 0),
        _opt("bool", "mirror", 21, False),
        _rep("BlobProto", "blobs", 50),
        _rep("float", "blobs_lr", 51),
        _rep("float", "weight_decay", 52),
        _opt("uint32", "rand_skip", 53, 0),
        _opt("float", "det_fg_threshold", 54, 0.5),
        _opt("float", "det_bg_threshold", 55, 0.5),
        _opt("float", "det_fg_fraction", 56, 0.25),
        _opt("uint32", "det_context_pad", 58, 0),
        _opt("string", "det_crop_mode", 59, "warp"),
        _opt("int32", "new_num", 60, 0),
        _opt("int32", "new_channels", 61, 0),
        _opt("int32", "new_height", 62, 0),
        _opt("int32", "new_width", 63, 0),
        _opt("bool", "shuffle_images", 64, False),
        _opt("uint32", "concat_dim", 65, 1),
        _opt("HDF5OutputParameter", "hdf5_output_param", 1001),
    ), {"PoolMethod": _enum("MAX", "AVE", "STOCHASTIC")}),
}
# ===== end of the legacy net formats ==============================================================

_FDP = descriptor_pb2.FieldDescriptorProto
_SCALAR_TYPES = {
    "double": _FDP.TYPE_DOUBLE, "float": _FDP.TYPE_FLOAT, "int64": _FDP.TYPE_INT64,
    "uint64": _FDP.TYPE_UINT64, "int32": _FDP.TYPE_INT32, "uint32": _FDP.TYPE_UINT32,
    "bool": _FDP.TYPE_BOOL, "string": _FDP.TYPE_STRING, "bytes": _FDP.TYPE_BYTES,
}
_LABELS = {"optional": _FDP.LABEL_OPTIONAL, "required": _FDP.LABEL_REQUIRED,
           "repeated": _FDP.LABEL_REPEATED}


#: `*_param` messages of declared fork types: ((LayerParameter field, ((field, scalar type,
#: default), ...)), ...), hashable so that each set of declarations builds its classes once
Extensions = tuple[tuple[str, tuple[tuple[str, str, object], ...]], ...]
# Fork messages' fields in LayerParameter: numbers no Caffe uses. Text prototxt, which is what
# archc reads and writes, goes by name; a caffemodel keeps such fields as unknown fields.
_FIRST_EXTENSION_NUMBER = 100_000


def extensions_for(types: dict) -> Extensions:
    """The messages that declared fork types (`archc.ir.ops.fork.ForkTypes`) add to the schema:
    those of a `*_param` name Caffe's LayerParameter lacks."""
    known = {field.name for field in _COMMON_MESSAGES["LayerParameter"].fields}
    found: dict[str, tuple] = {}
    for op in types.values():
        if op.param_message is None or op.param_message in known:
            continue
        found[op.param_message] = tuple(
            (field.name, FIELD_KINDS[kind][1],
             None if field.default is dataclasses.MISSING else field.default)
            for field, kind in zip(dataclasses.fields(op), op.field_kinds))
    return tuple(sorted(found.items()))


def message_name(param_field: str) -> str:
    """Caffe's naming: `shuffle_channel_param` is a `ShuffleChannelParameter`."""
    return "".join(word.title() for word in param_field.removesuffix("_param").split("_")) + "Parameter"


def schema_messages(dialect: str, extensions: Extensions = ()) -> dict[str, MessageSpec]:
    """Every message of the dialect, by name (the data the classes are built from)."""
    _check_dialect(dialect)
    messages = {**_COMMON_MESSAGES, **_TRAINING_MESSAGES, **_LEGACY_MESSAGES,
                "PoolingParameter": _POOLING_BY_DIALECT[dialect]}
    messages["V1LayerParameter"] = _v1_layer_message(messages["LayerParameter"])
    added = []
    for number, (param_field, fields) in enumerate(extensions, start=_FIRST_EXTENSION_NUMBER):
        name = message_name(param_field)
        messages[name] = MessageSpec(tuple(_opt(kind, field, index, default)
                                           for index, (field, kind, default) in enumerate(fields, 1)))
        added.append(_opt(name, param_field, number))
    layer = messages["LayerParameter"]
    messages["LayerParameter"] = layer._replace(fields=layer.fields + tuple(added))
    return messages


def _check_dialect(dialect: str) -> None:
    if dialect not in DIALECTS:
        raise ValueError(f"unknown Caffe dialect {dialect!r}: expected one of {', '.join(DIALECTS)}")


def _default_text(value: object) -> str:
    """protobuf descriptors store defaults as text: bools lower-case, enums by value name."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _file_descriptor(dialect: str, extensions: Extensions) -> descriptor_pb2.FileDescriptorProto:
    messages = schema_messages(dialect, extensions)
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
def _pool(dialect: str, extensions: Extensions = ()) -> descriptor_pool.DescriptorPool:
    # One pool per dialect (both define caffe.PoolingParameter, differently) and set of
    # declared fork messages.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file_descriptor(dialect, extensions))
    return pool


def message_class(name: str, dialect: str = "ceil_mode", extensions: Extensions = ()) -> type[Message]:
    """The generated class of the Caffe message `name` (e.g. "LayerParameter") in a dialect."""
    _check_dialect(dialect)
    pool = _pool(dialect, extensions)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))


def net_parameter_class(dialect: str = "ceil_mode", extensions: Extensions = ()) -> type[Message]:
    return message_class("NetParameter", dialect, extensions)


def parse_prototxt(text: str, dialect: str = "ceil_mode", path: str = "<prototxt>",
                   extensions: Extensions = ()) -> Message:
    """Parse prototxt text into a NetParameter; syntax errors and unknown fields raise ArchError
    at their line and column, naming the field. `extensions`: declared fork messages."""
    net = net_parameter_class(dialect, extensions)()
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
        if unmodelled and unmodelled.group(1).endswith("_param") and line:
            raise ArchError(_unmodelled_layer(text, line, unmodelled.group(1)), span) from None
        if _V1_TYPE_ENUM in message:
            message += (": a legacy `layers` entry takes a V1 type such as CONVOLUTION (a current "
                        "`layer` entry takes \"Convolution\")")
        raise ArchError(f"not a valid Caffe prototxt ({dialect} dialect): {message}", span) from None
    check_required_fields(net, path)
    return net


def check_required_fields(net: Message, path: str) -> None:
    """Text format leaves a required field's absence to the reader, and Caffe's reader aborts on
    it: refuse the file, naming the field and its layer."""
    if net.IsInitialized():
        return
    missing = net.FindInitializationErrors()[0]  # e.g. "layer[3].clip_param.min"
    where = re.match(r"layers?\[(\d+)\]\.(.*)", missing)
    if where:
        layers = net.layers if missing.startswith("layers[") else net.layer
        missing = f"layer '{layers[int(where.group(1))].name}' lacks {where.group(2)}"
    else:
        missing = f"the net lacks {missing}"
    raise ArchError(f"{path}: {missing}, which Caffe requires (it cannot read the file without "
                    f"it)")


def _unmodelled_layer(text: str, line: int, field: str) -> str:
    """The message for a `*_param` field the schema lacks: a Caffe layer type archc does not
    model, or an undeclared fork's type, named with its layer from the text before it."""
    before = "\n".join(text.split("\n")[:line])
    starts = list(_LAYER_START.finditer(before))
    block = before[starts[-1].start():] if starts else before
    name = re.search(r'\bname\s*:\s*"([^"]*)"', block)
    kind = re.search(r'\btype\s*:\s*"?(\w+)', block)
    layer = f"layer '{name.group(1)}'" if name else "a layer"
    what = f"has type '{kind.group(1)}', which" if kind else "uses a layer type that"
    if field in CAFFE_LAYER_PARAMS:
        return f"{layer} {what} archc does not model (its {field} cannot be read)"
    return (f"{layer} {what} is not Caffe's own (its {field} is no Caffe field): declare the "
            f"fork's type in an .arch file and pass it with --types (see docs/language.md)")


def length_delimited(number: int, payload: bytes) -> bytes:
    """Field `number` with wire type 2 (bytes, string, message or packed values) holding
    `payload`, in protobuf's binary encoding: built directly where going through message classes
    would be slow (millions of floats) or impossible (a field the schema does not describe)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    encoded = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        encoded.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(encoded)


def parse_caffemodel(data: bytes, dialect: str = "ceil_mode", path: str = "<caffemodel>") -> Message:
    """Decode a binary .caffemodel (a serialised NetParameter with weights in `blobs`)."""
    net = net_parameter_class(dialect)()
    try:
        net.ParseFromString(data)
    except DecodeError as error:
        raise ArchError(f"{path}: not a Caffe model file: {error}") from None
    return net
