"""Caffe's older net formats, upgraded to the current one exactly as Caffe's upgrade_proto.cpp does.

Caffe has read three layer formats, and still reads all of them:
- V0 (until March 2014): `layers { layer { name: "conv1" type: "conv" kernelsize: 11 ... }
  bottom: "data" top: "conv1" }`, every setting a flat field of the inner `layer`, and padding as
  a layer of its own;
- V1 (until February 2015): `layers { name: "conv1" type: CONVOLUTION blobs_lr: 1 weight_decay: 1
  convolution_param { ... } }`, types as enum values;
- the current `layer { type: "Convolution" param { lr_mult: 1 decay_mult: 1 } ... }`.
Whenever Caffe loads a net, a prototxt or a .caffemodel, it upgrades it in these steps
(UpgradeNetAsNeeded), each taken when the net needs it:
1. V0 -> V1: padding layers merged into the convolution or pooling that reads them, then each V0
   layer's flat fields moved into its V1 `*_param` message (UpgradeV0Net);
2. the data layers' transformation fields (`scale`, `mean_file`, `crop_size`, `mirror`) moved to
   `transform_param` (UpgradeNetDataTransformation);
3. V1 -> current: enum types to type names; `param` names, `blob_share_mode`, `blobs_lr` and
   `weight_decay` to `param { name share_mode lr_mult decay_mult }` (UpgradeV1Net);
4. `input` + `input_shape`/`input_dim` to an Input layer named "input" (UpgradeNetInput);
5. BatchNorm layers with three `param` specs get lr_mult and decay_mult 0 (UpgradeNetBatchNorm).
`upgrade_layers` takes steps 1-3, the layer format: the importer reads net inputs and param specs
in either form itself. `upgrade_net` takes all five, as Caffe's upgrade_net_proto_text and
upgrade_net_proto_binary tools do.

Where Caffe aborts (LOG(FATAL)), and where it reports an upgrade as failed and drops a setting
(LOG(ERROR), "continuing anyway"), archc raises an `UpgradeError` naming the layer and the
construct. A file that mixes formats is refused, as Caffe refuses `layer` with `layers`.
"""
from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import unknown_fields
from google.protobuf.message import Message

from archc.codegen import schema
from archc.errors import ArchError

#: V0 type string -> V1 type enum name (UpgradeV0LayerType); any other V0 type is fatal to Caffe.
V0_LAYER_TYPES = {
    "accuracy": "ACCURACY", "bnll": "BNLL", "concat": "CONCAT", "conv": "CONVOLUTION",
    "data": "DATA", "dropout": "DROPOUT", "euclidean_loss": "EUCLIDEAN_LOSS",
    "flatten": "FLATTEN", "hdf5_data": "HDF5_DATA", "hdf5_output": "HDF5_OUTPUT",
    "im2col": "IM2COL", "images": "IMAGE_DATA", "infogain_loss": "INFOGAIN_LOSS",
    "innerproduct": "INNER_PRODUCT", "lrn": "LRN",
    "multinomial_logistic_loss": "MULTINOMIAL_LOGISTIC_LOSS", "pool": "POOLING", "relu": "RELU",
    "sigmoid": "SIGMOID", "softmax": "SOFTMAX", "softmax_loss": "SOFTMAX_LOSS", "split": "SPLIT",
    "tanh": "TANH", "window_data": "WINDOW_DATA",
}

#: V1 type enum name -> current type name (UpgradeV1LayerType).
V1_LAYER_TYPES = {
    "NONE": "", "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution", "DATA": "Data", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}

_ANY_TYPE = "*"
#: Where UpgradeV0LayerParameter moves each flat V0 field, by V0 layer type (`*`: any type), as
#: `param_message.field`. A field set on a type not listed is dropped by Caffe (LOG(ERROR)).
#: Caffe ignores `new_num` and `new_channels`; name, type, blobs, blobs_lr and weight_decay
#: move as they are.
V0_FIELD_TARGETS: dict[str, dict[str, str]] = {
    "num_output": {"conv": "convolution_param.num_output",
                   "innerproduct": "inner_product_param.num_output"},
    "biasterm": {"conv": "convolution_param.bias_term",
                 "innerproduct": "inner_product_param.bias_term"},
    "weight_filler": {"conv": "convolution_param.weight_filler",
                      "innerproduct": "inner_product_param.weight_filler"},
    "bias_filler": {"conv": "convolution_param.bias_filler",
                    "innerproduct": "inner_product_param.bias_filler"},
    "pad": {"conv": "convolution_param.pad", "pool": "pooling_param.pad"},
    "kernelsize": {"conv": "convolution_param.kernel_size", "pool": "pooling_param.kernel_size"},
    "group": {"conv": "convolution_param.group"},
    "stride": {"conv": "convolution_param.stride", "pool": "pooling_param.stride"},
    "pool": {"pool": "pooling_param.pool"},  # V0's PoolMethod numbers are PoolingParameter's
    "dropout_ratio": {"dropout": "dropout_param.dropout_ratio"},
    "local_size": {"lrn": "lrn_param.local_size"},
    "alpha": {"lrn": "lrn_param.alpha"},
    "beta": {"lrn": "lrn_param.beta"},
    "k": {"lrn": "lrn_param.k"},
    "source": {"data": "data_param.source", "hdf5_data": "hdf5_data_param.source",
               "images": "image_data_param.source", "window_data": "window_data_param.source",
               "infogain_loss": "infogain_loss_param.source"},
    "scale": {_ANY_TYPE: "transform_param.scale"},
    "meanfile": {_ANY_TYPE: "transform_param.mean_file"},
    "batchsize": {"data": "data_param.batch_size", "hdf5_data": "hdf5_data_param.batch_size",
                  "images": "image_data_param.batch_size",
                  "window_data": "window_data_param.batch_size"},
    "cropsize": {_ANY_TYPE: "transform_param.crop_size"},
    "mirror": {_ANY_TYPE: "transform_param.mirror"},
    "rand_skip": {"data": "data_param.rand_skip", "images": "image_data_param.rand_skip"},
    "shuffle_images": {"images": "image_data_param.shuffle"},
    "new_height": {"images": "image_data_param.new_height"},
    "new_width": {"images": "image_data_param.new_width"},
    "concat_dim": {"concat": "concat_param.concat_dim"},
    "det_fg_threshold": {"window_data": "window_data_param.fg_threshold"},
    "det_bg_threshold": {"window_data": "window_data_param.bg_threshold"},
    "det_fg_fraction": {"window_data": "window_data_param.fg_fraction"},
    "det_context_pad": {"window_data": "window_data_param.context_pad"},
    "det_crop_mode": {"window_data": "window_data_param.crop_mode"},
    "hdf5_output_param": {"hdf5_output": "hdf5_output_param"},
}

#: The V1 data layers whose own parameters once held the transformation fields.
_DATA_LAYER_PARAMS = {"DATA": "data_param", "IMAGE_DATA": "image_data_param",
                      "WINDOW_DATA": "window_data_param"}
_TRANSFORMATION_FIELDS = ("scale", "mean_file", "crop_size", "mirror")
_PADDING = "padding"
#: V1LayerParameter's number of each `*_param` field -> LayerParameter's
_V1_PARAM_NUMBERS = {param.v1_number: param.number for param in schema.V1_LAYER_PARAMS.values()}
_LENGTH_DELIMITED = 2   # the wire type of message fields


class UpgradeError(ArchError):
    """An old-format construct Caffe aborts on, or cannot upgrade without dropping a setting.
    `layer` is the index of the old file's `layers` entry at fault (None: the net's fields)."""

    def __init__(self, message: str, layer: int | None = None):
        super().__init__(message)
        self.layer = layer


@dataclass(frozen=True)
class UpgradedNet:
    net: Message                         # the NetParameter in the current format
    #: for each layer of `net`, the index of the old file's layer (`layers` entry of a V0 or V1
    #: file, `layer` entry of a current one) it was made from; None for the Input layer
    origins: tuple[int | None, ...]
    #: what was upgraded, in Caffe's order, e.g. ("V1 layers", "input fields"); () for none
    steps: tuple[str, ...]


def upgrade_layers(net: Message) -> UpgradedNet:
    """The net in the current layer format (steps 1-3); `net` itself when it is already."""
    _refuse_mixed_formats(net)
    steps: list[str] = []
    origins: tuple[int | None, ...] = tuple(range(len(net.layer) or len(net.layers)))
    if any(connection.HasField("layer") for connection in net.layers):
        origins = _v0_layers_kept(net)
        if len(origins) < len(net.layers):
            steps.append("V0 padding layers")
        steps.append("V0 layers")
        net = _upgrade_v0_net(net)
    if _needs_data_upgrade(net):
        steps.append("data-layer transformation fields")
        net = _upgrade_data_transformation(net)
    if len(net.layers):
        steps.append("V1 layers")
        net = _upgrade_v1_net(net)
    return UpgradedNet(net, origins, tuple(steps))


def upgrade_net(net: Message) -> UpgradedNet:
    """The net as Caffe upgrades it on loading (steps 1-5), and as its upgrade tools write it."""
    upgraded = upgrade_layers(net)
    net, origins, steps = upgraded.net, upgraded.origins, list(upgraded.steps)
    if len(net.input):
        steps.append("input fields")
        with_input_layer = _upgrade_net_input(net)
        origins = (None,) * (len(with_input_layer.layer) - len(net.layer)) + origins
        net = with_input_layer
    if _needs_batch_norm_upgrade(net):
        steps.append("BatchNorm param specs")
        net = _upgrade_batch_norm(net)
    return UpgradedNet(net, origins, tuple(steps))


def _refuse_mixed_formats(net: Message) -> None:
    """Caffe refuses `layer` with `layers` (UpgradeV1Net). Its V0 upgrade would silently drop
    `layer` entries, and keep only the bottoms and tops of a V1 `layers` entry: refused too."""
    if len(net.layer) and len(net.layers):
        raise UpgradeError("this net mixes current `layer { type: \"...\" }` entries with legacy "
                           "`layers { ... }` ones, which Caffe refuses: write every layer in one "
                           "format", 0)
    v0 = [connection.HasField("layer") for connection in net.layers]
    if any(v0) and not all(v0):
        index = v0.index(False)
        raise UpgradeError(f"layers entry '{net.layers[index].name}' is in the V1 format but "
                           f"others are V0 (`layers {{ layer {{ ... }} }}`), and Caffe's V0 upgrade "
                           f"keeps only the bottoms and tops of a V1 entry: write every layer in "
                           f"one format", index)


# ----- step 1: V0 -> V1 -----------------------------------------------------------------------

def _upgrade_v0_net(net: Message) -> Message:
    """UpgradeV0Net: padding layers merged, then each V0 layer upgraded. Caffe keeps only the
    net's name, inputs, input_dim and force_backward."""
    padded = _merge_v0_padding_layers(net)
    upgraded = type(net)()
    if padded.HasField("name"):
        upgraded.name = padded.name
    for connection, index in zip(padded.layers, _v0_layers_kept(net)):
        _upgrade_v0_layer(connection, upgraded.layers.add(), index)
    upgraded.input.extend(padded.input)
    upgraded.input_dim.extend(padded.input_dim)
    if padded.HasField("force_backward"):
        upgraded.force_backward = padded.force_backward
    return upgraded


def _v0_layers_kept(net: Message) -> tuple[int, ...]:
    """The index of every V0 layer that is no padding layer: those the upgrade keeps."""
    return tuple(index for index, connection in enumerate(net.layers)
                 if connection.layer.type != _PADDING)


def _merge_v0_padding_layers(net: Message) -> Message:
    """UpgradeV0PaddingLayers: a V0 "padding" layer is dropped, and the convolution or pooling
    that reads it reads the padding layer's bottom with the padding layer's `pad`."""
    merged = type(net)()
    merged.CopyFrom(net)
    merged.ClearField("layers")
    kept = set(_v0_layers_kept(net))
    last_writer = {blob: -1 for blob in net.input}  # blob -> index of the layer that wrote it last
    for index, connection in enumerate(net.layers):
        v0 = connection.layer
        if index in kept:
            merged.layers.add().CopyFrom(connection)
        for position, blob in enumerate(connection.bottom):
            if blob not in last_writer:
                raise UpgradeError(f"V0 layer '{v0.name}' reads blob '{blob}', which no input or "
                                   f"earlier layer provides (Caffe aborts)", index)
            writer = last_writer[blob]
            if writer == -1 or writer in kept:
                continue
            padding = net.layers[writer]
            if v0.type not in ("conv", "pool"):
                raise UpgradeError(f"V0 layer '{v0.name}' (type \"{v0.type}\") reads padding "
                                   f"layer '{padding.layer.name}': Caffe merges padding only into "
                                   f"a conv or pool layer", index)
            if len(connection.bottom) != 1 or len(padding.bottom) != 1 or len(padding.top) != 1:
                raise UpgradeError(f"V0 padding layer '{padding.layer.name}' and the layer "
                                   f"'{v0.name}' reading it must each take one bottom, and the "
                                   f"padding layer give one top, for Caffe to merge them", index)
            merged.layers[-1].layer.pad = padding.layer.pad
            merged.layers[-1].bottom[position] = padding.bottom[0]
        for blob in connection.top:
            last_writer[blob] = index
    return merged


def _upgrade_v0_layer(connection: Message, layer: Message, index: int) -> None:
    """UpgradeV0LayerParameter: one V0 `layers` entry into the empty V1 entry `layer`. (Caffe
    copies only the bottoms and tops of an entry without a V0 `layer`: refused before.)"""
    layer.bottom.extend(connection.bottom)
    layer.top.extend(connection.top)
    v0 = connection.layer
    if v0.HasField("name"):
        layer.name = v0.name
    if v0.HasField("type"):
        if v0.type not in V0_LAYER_TYPES:
            raise UpgradeError(f"V0 layer '{v0.name}' has type \"{v0.type}\", which Caffe does not "
                               f"know (V0 types: {', '.join(V0_LAYER_TYPES)}, padding)", index)
        layer.type = layer.LayerType.Value(V0_LAYER_TYPES[v0.type])
    layer.blobs.extend(v0.blobs)
    layer.blobs_lr.extend(v0.blobs_lr)
    layer.weight_decay.extend(v0.weight_decay)
    for field, targets in V0_FIELD_TARGETS.items():
        if not v0.HasField(field):
            continue
        target = targets.get(v0.type, targets.get(_ANY_TYPE))
        if target is None:
            types = " and ".join(f'"{t}"' for t in targets)
            raise UpgradeError(f"V0 layer '{v0.name}' (type \"{v0.type}\") sets `{field}`, which "
                               f"Caffe's upgrade drops: only {types} layers take it; remove it",
                               index)
        _set_path(layer, target, getattr(v0, field))


def _set_path(layer: Message, path: str, value: object) -> None:
    """Set `param_message.field` of a V1 layer as Caffe's generated setters do: a repeated field
    gets one more value, a message is copied, an unsigned field takes a signed value modulo 2^32."""
    message = layer
    *parents, name = path.split(".")
    for parent in parents:
        message = getattr(message, parent)
    descriptor = message.DESCRIPTOR.fields_by_name[name]
    if descriptor.message_type is not None:
        getattr(message, name).CopyFrom(value)
    elif descriptor.is_repeated:
        getattr(message, name).append(value)
    elif descriptor.type == descriptor.TYPE_UINT32:
        setattr(message, name, value % 2 ** 32)   # V0's int32 new_height, new_width
    else:
        setattr(message, name, value)


# ----- step 2: data-layer transformation fields -----------------------------------------------

def _needs_data_upgrade(net: Message) -> bool:
    """NetNeedsDataUpgrade: a V1 data layer sets a transformation field in its own parameters."""
    return any(getattr(layer, param).HasField(field)
               for layer in net.layers if (param := _data_layer_param(layer))
               for field in _TRANSFORMATION_FIELDS)


def _upgrade_data_transformation(net: Message) -> Message:
    """UpgradeNetDataTransformation. Caffe's macro touches `transform_param` and the layer's own
    parameters of every data layer, so both are present afterwards, if empty."""
    upgraded = type(net)()
    upgraded.CopyFrom(net)
    for layer in upgraded.layers:
        param = _data_layer_param(layer)
        if param is None:
            continue
        own, transform = getattr(layer, param), layer.transform_param
        own.SetInParent()
        transform.SetInParent()
        for field in _TRANSFORMATION_FIELDS:
            if own.HasField(field):
                setattr(transform, field, getattr(own, field))
                own.ClearField(field)
    return upgraded


def _data_layer_param(layer: Message) -> str | None:
    if not layer.HasField("type"):
        return None
    return _DATA_LAYER_PARAMS.get(layer.LayerType.Name(layer.type))


# ----- step 3: V1 -> current ------------------------------------------------------------------

def _upgrade_v1_net(net: Message) -> Message:
    """UpgradeV1Net: every field of the net kept, each V1 `layers` entry upgraded to a `layer`."""
    upgraded = type(net)()
    upgraded.CopyFrom(net)
    upgraded.ClearField("layers")
    for v1 in net.layers:
        _upgrade_v1_layer(v1, upgraded.layer.add())
    return upgraded


def _upgrade_v1_layer(v1: Message, layer: Message) -> None:
    """UpgradeV1LayerParameter: one V1 entry into the empty LayerParameter `layer`."""
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    if v1.HasField("name"):
        layer.name = v1.name
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    if v1.HasField("type"):
        layer.type = V1_LAYER_TYPES[v1.LayerType.Name(v1.type)]
    layer.blobs.extend(v1.blobs)
    # Each list fills param specs from the first, adding specs as needed (Caffe's while loops).
    for values, field in ((v1.param, "name"), (v1.blob_share_mode, "share_mode"),
                          (v1.blobs_lr, "lr_mult"), (v1.weight_decay, "decay_mult")):
        for index, value in enumerate(values):
            while len(layer.param) <= index:
                layer.param.add()
            setattr(layer.param[index], field, value)   # V1's DimCheckMode numbers are ParamSpec's
    layer.loss_weight.extend(v1.loss_weight)
    for name in schema.V1_LAYER_PARAMS:
        if name in v1.DESCRIPTOR.fields_by_name and v1.HasField(name):
            getattr(layer, name).CopyFrom(getattr(v1, name))
    _carry_unknown_params(v1, layer)


def _carry_unknown_params(v1: Message, layer: Message) -> None:
    """A .caffemodel's V1 layer may hold parameters whose message archc's schema lacks; they are
    unknown fields here, and move to their LayerParameter numbers byte for byte, as Caffe copies
    them. (A prototxt cannot have them: the text parser refuses unknown fields.)"""
    for field in unknown_fields.UnknownFieldSet(v1):
        # A known number with another wire type is no parameter message: Caffe drops it too.
        if field.field_number in _V1_PARAM_NUMBERS and field.wire_type == _LENGTH_DELIMITED:
            number = _V1_PARAM_NUMBERS[field.field_number]
            layer.MergeFromString(schema.length_delimited(number, field.data))


# ----- step 4: input fields -> an Input layer -------------------------------------------------

def _upgrade_net_input(net: Message) -> Message:
    """UpgradeNetInput: the inputs become the tops of an Input layer named "input", first in the
    net, with `input_shape` if given, else `input_dim` in fours. Inputs without either (old
    .caffemodel files list them) are just removed."""
    upgraded = type(net)()
    upgraded.CopyFrom(net)
    names, shapes, dims = list(net.input), net.input_shape, list(net.input_dim)
    for field in ("input", "input_shape", "input_dim"):
        upgraded.ClearField(field)
    if not len(shapes) and not dims:
        return upgraded
    # Caffe reads one shape, or four dims, per input, past the end of the list if it is short.
    if len(shapes) and len(shapes) < len(names):
        raise UpgradeError(f"{len(names)} inputs but {len(shapes)} input_shape entries: give one "
                           f"shape per input")
    if not len(shapes) and len(dims) < 4 * len(names):
        raise UpgradeError(f"{len(names)} inputs need {4 * len(names)} input_dim values, "
                           f"got {len(dims)}")
    upgraded.ClearField("layer")
    input_layer = upgraded.layer.add(name="input", type="Input", top=names)
    for index in range(len(names)):
        shape = input_layer.input_param.shape.add()
        if len(shapes):
            shape.CopyFrom(shapes[index])
        else:
            shape.dim.extend(dims[4 * index:4 * index + 4])
    upgraded.layer.extend(net.layer)
    return upgraded


# ----- step 5: BatchNorm param specs ----------------------------------------------------------

def _needs_batch_norm_upgrade(net: Message) -> bool:
    """NetNeedsBatchNormUpgrade: the old BatchNorm definition declared its three blobs' specs."""
    return any(_old_batch_norm(layer) for layer in net.layer)


def _upgrade_batch_norm(net: Message) -> Message:
    """UpgradeNetBatchNorm: such specs get lr_mult and decay_mult 0 (the statistics are not
    learned); their other fields stay."""
    upgraded = type(net)()
    upgraded.CopyFrom(net)
    for layer in upgraded.layer:
        if _old_batch_norm(layer):
            for param in layer.param:
                param.lr_mult = 0
                param.decay_mult = 0
    return upgraded


def _old_batch_norm(layer: Message) -> bool:
    return layer.type == "BatchNorm" and len(layer.param) == 3
