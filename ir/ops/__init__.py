"""The op definitions: one class per Caffe layer type archc models (see `base` for what a
definition holds). Importing this package registers every definition in `OPS`."""
# Importing a module registers its definitions; this order is the order the language lists its
# ops in (`archc` error hints, docs): convolution first, merges last.
from archc.ir.ops.convolution import Convolution, Deconvolution, Im2col  # isort: skip
from archc.ir.ops.normalization import LRN, LRN_REGIONS, MVN, BatchNorm, Bias, Scale  # isort: skip
from archc.ir.ops.activations import (ELU, BNLL, AbsVal, Clip, Dropout, Exp, Log, Power,  # isort: skip
                                      PReLU, ReLU, Sigmoid, Softmax, Swish, TanH, Threshold)
from archc.ir.ops.pooling import POOL_METHODS, ROUNDINGS, SPP, Pooling  # isort: skip
from archc.ir.ops.inner_product import Embed, InnerProduct  # isort: skip
from archc.ir.ops.reshape import Crop, Flatten, Reshape, Slice, Tile  # isort: skip
from archc.ir.ops.reduction import REDUCTION_OPERATIONS, ArgMax, Reduction  # isort: skip
from archc.ir.ops.routing import BatchReindex, Filter, Parameter, Silence, Split  # isort: skip
from archc.ir.ops.recurrent import LSTM, RNN, LSTMUnit  # isort: skip
from archc.ir.ops.merge import ELTWISE_OPERATIONS, Concat, Eltwise  # isort: skip
from archc.ir.ops.base import (INT_MAX, MAX_AXES, REGISTRY, ArgumentError, Op, Param, ParamBlob,
                               Primitive, Shape, ShapeError, UnsupportedSetting, format_shape)

#: Caffe type name -> op definition
OPS: dict[str, type[Op]] = REGISTRY

__all__ = ["INT_MAX", "MAX_AXES", "OPS", "ArgumentError", "Op", "Param", "ParamBlob", "Primitive",
           "Shape", "ShapeError", "UnsupportedSetting", "format_shape",
           "Convolution", "Deconvolution", "Im2col",
           "BatchNorm", "Scale", "Bias", "LRN", "MVN",
           "ReLU", "Sigmoid", "TanH", "ELU", "AbsVal", "BNLL", "Power", "Exp", "Log", "Threshold",
           "Clip", "Swish", "PReLU", "Dropout", "Softmax",
           "Pooling", "SPP", "InnerProduct", "Embed",
           "Reshape", "Flatten", "Slice", "Crop", "Tile", "Reduction", "ArgMax",
           "Split", "Silence", "Parameter", "Filter", "BatchReindex", "LSTM", "RNN", "LSTMUnit",
           "Concat", "Eltwise",
           "ELTWISE_OPERATIONS", "LRN_REGIONS", "POOL_METHODS", "REDUCTION_OPERATIONS", "ROUNDINGS"]
