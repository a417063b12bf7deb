"""Current prototxts written back in Caffe's V1 and V0 formats, as old Caffe files were written.

BVLC converted the model zoo from the V1 format with Caffe's own upgrade tool (February 2015) and
later replaced `input` + `input_dim` by Input layers; writing a current file back in the V1 form
gives the file as it was published: `layers { name type: CONVOLUTION bottom top blobs_lr
weight_decay convolution_param { ... } }` after `input: "data"` and four `input_dim` lines. The V0
form (until March 2014) nests a flat `layer { }` in each `layers { }` entry, with V0's spellings
(type "conv", `kernelsize`, `biasterm`, `blobs_lr`, `weight_decay`), and pads a convolution with a
separate "padding" layer in front of it, as files before March 2014 did.

The names and spellings below are caffe.proto's, written out independently of archc's upgrade.
A current file that the old format cannot express raises `NotExpressible`.
"""
from __future__ import annotations

from google.protobuf import text_format

from archc.codegen import schema
from archc.codegen.upgrade import V1_LAYER_TYPES
from archc.ir.ops.base import short_float

#: current type -> V1 LayerType enum name (the inverse of the upgrade's table: real Caffe, which
#: upgrades the files these tests write by itself, checks that table)
V1_TYPE_NAMES = {current: v1 for v1, current in V1_LAYER_TYPES.items() if current}
#: V1LayerParameter's `*_param` fields
V1_PARAMS = {
    "accuracy_param", "argmax_param", "concat_param", "contrastive_loss_param",
    "convolution_param", "data_param", "dropout_param", "dummy_data_param", "eltwise_param",
    "exp_param", "hdf5_data_param", "hdf5_output_param", "hinge_loss_param", "image_data_param",
    "infogain_loss_param", "inner_product_param", "lrn_param", "memory_data_param", "mvn_param",
    "pooling_param", "power_param", "relu_param", "sigmoid_param", "softmax_param", "slice_param",
    "tanh_param", "threshold_param", "window_data_param", "transform_param", "loss_param",
}
#: current type -> V0 type string, for the types whose settings V0 can hold
V0_TYPE_NAMES = {
    "Concat": "concat", "Convolution": "conv", "Dropout": "dropout", "Flatten": "flatten",
    "InnerProduct": "innerproduct", "LRN": "lrn", "Pooling": "pool", "ReLU": "relu",
    "Sigmoid": "sigmoid", "Softmax": "softmax", "Split": "split", "TanH": "tanh", "BNLL": "bnll",
}
#: `param_message.field` -> its flat V0 field
V0_FIELD_NAMES = {
    "convolution_param.num_output": "num_output", "convolution_param.bias_term": "biasterm",
    "convolution_param.weight_filler": "weight_filler",
    "convolution_param.bias_filler": "bias_filler", "convolution_param.pad": "pad",
    "convolution_param.kernel_size": "kernelsize", "convolution_param.group": "group",
    "convolution_param.stride": "stride",
    "inner_product_param.num_output": "num_output", "inner_product_param.bias_term": "biasterm",
    "inner_product_param.weight_filler": "weight_filler",
    "inner_product_param.bias_filler": "bias_filler",
    "pooling_param.pool": "pool", "pooling_param.kernel_size": "kernelsize",
    "pooling_param.stride": "stride", "pooling_param.pad": "pad",
    "lrn_param.local_size": "local_size", "lrn_param.alpha": "alpha", "lrn_param.beta": "beta",
    "lrn_param.k": "k",
    "dropout_param.dropout_ratio": "dropout_ratio",
    "concat_param.concat_dim": "concat_dim", "concat_param.axis": "concat_dim",
}
_WIRING = {"name", "type", "bottom", "top"}


class NotExpressible(ValueError):
    """The current file uses something the old format does not have."""


def to_v1(text: str) -> str:
    """The current prototxt `text` in the V1 format."""
    net = schema.parse_prototxt(text)
    lines = _header(net)
    for layer in net.layer:
        if layer.type == "Input":
            continue
        if layer.type not in V1_TYPE_NAMES:
            raise NotExpressible(f"V1 has no type {layer.type}")
        lines += ["layers {", f"  name: {_quoted(layer.name)}", f"  type: {V1_TYPE_NAMES[layer.type]}"]
        lines += [f"  bottom: {_quoted(blob)}" for blob in layer.bottom]
        lines += [f"  top: {_quoted(blob)}" for blob in layer.top]
        lines += [f"  param: {_quoted(param.name)}" for param in layer.param if param.name]
        lines += [f"  {field}: {value}" for field, value in _learning_rates(layer)]
        settings = type(layer)()
        settings.CopyFrom(layer)
        for field in _WIRING | {"param"}:
            settings.ClearField(field)
        for field, _ in settings.ListFields():
            if field.name in ("phase", "propagate_down") or (
                    field.name.endswith("_param") and field.name not in V1_PARAMS):
                raise NotExpressible(f"V1 layers have no {field.name}")
        lines += _text_lines(settings, "  ")
        lines.append("}")
    return "\n".join(lines) + "\n"


def to_v0(text: str) -> str:
    """The current prototxt `text` in the V0 format, padding as separate layers."""
    net = schema.parse_prototxt(text)
    lines = _header(net)
    for layer in net.layer:
        if layer.type == "Input":
            continue
        if layer.type not in V0_TYPE_NAMES:
            raise NotExpressible(f"V0 has no type {layer.type}")
        fields = _v0_fields(layer)
        bottoms = list(layer.bottom)
        if layer.type == "Convolution" and "pad" in fields:
            padding = f"pad{layer.name.removeprefix('conv')}"
            lines += ["layers {", "  layer {", f"    name: {_quoted(padding)}", '    type: "padding"',
                      f"    pad: {fields.pop('pad')}", "  }", f"  bottom: {_quoted(bottoms[0])}",
                      f"  top: {_quoted(padding)}", "}"]
            bottoms = [padding]
        lines += ["layers {", "  layer {", f"    name: {_quoted(layer.name)}",
                  f"    type: {_quoted(V0_TYPE_NAMES[layer.type])}"]
        for name, value in fields.items():
            if isinstance(value, str):
                lines.append(f"    {name}: {value}")
            else:
                lines += [f"    {name} {{", *_text_lines(value, "      "), "    }"]
        lines += [f"    {field}: {value}" for field, value in _learning_rates(layer)]
        lines.append("  }")
        lines += [f"  bottom: {_quoted(blob)}" for blob in bottoms]
        lines += [f"  top: {_quoted(blob)}" for blob in layer.top]
        lines.append("}")
    return "\n".join(lines) + "\n"


def _header(net) -> list[str]:
    """The name, and the inputs as `input` + four `input_dim` each (old files had no other form)."""
    lines = [f"name: {_quoted(net.name)}"] if net.name else []
    shapes = list(zip(net.input, [list(s.dim) for s in net.input_shape] or
                      [list(net.input_dim[i:i + 4]) for i in range(0, len(net.input_dim), 4)]))
    for layer in net.layer:
        if layer.type == "Input":
            shapes += zip(layer.top, [list(s.dim) for s in layer.input_param.shape] * len(layer.top))
    for name, shape in shapes:
        if len(shape) != 4:
            raise NotExpressible(f"input '{name}' is not 4-D")
        lines.append(f"input: {_quoted(name)}")
        lines += [f"input_dim: {dim}" for dim in shape]
    return lines


def _learning_rates(layer) -> list[tuple[str, object]]:
    """`param { lr_mult decay_mult }` as V1's and V0's positional `blobs_lr` and `weight_decay`."""
    pairs = []
    for field, old in (("lr_mult", "blobs_lr"), ("decay_mult", "weight_decay")):
        if any(param.HasField(field) for param in layer.param):
            pairs += [(old, _number(getattr(param, field))) for param in layer.param]
    return pairs


def _v0_fields(layer) -> dict[str, object]:
    fields: dict[str, object] = {}
    for field, _ in layer.ListFields():
        if field.name in _WIRING or field.name == "param":   # param: `_learning_rates`
            continue
        if not field.name.endswith("_param"):
            raise NotExpressible(f"V0 layers have no {field.name}")
        message = getattr(layer, field.name)
        for sub, value in message.ListFields():
            key = f"{field.name}.{sub.name}"
            if key not in V0_FIELD_NAMES or (sub.is_repeated and len(value) != 1):
                raise NotExpressible(f"V0 has no {key} (as set in layer '{layer.name}')")
            value = value[0] if sub.is_repeated else value
            if sub.enum_type is not None:
                value = sub.enum_type.values_by_number[value].name
            elif isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, float):
                value = _number(value)
            elif isinstance(value, int):
                value = str(value)
            fields[V0_FIELD_NAMES[key]] = value
    return fields


def _text_lines(message, indent: str) -> list[str]:
    text = text_format.MessageToString(message, indent=len(indent))
    return text.rstrip("\n").split("\n") if text else []


def _number(value: float) -> str:
    """A float32 as old files wrote it: `1.`, `0.0001`."""
    value = short_float(value)
    return f"{int(value)}." if value.is_integer() else repr(value)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
