"""The net as an ONNX model (opset 17) that computes Caffe's blobs, with `FORMS`: each Caffe op's
ONNX form, or its `Refusal`.

Tensor names: each Caffe blob's final value keeps the blob's name (so a blob can be compared with
Caffe's by name); a value an in-place layer later rewrites is `BLOB#LAYER`; parameters are
`LAYER.ROLE` (`conv1.weight`, `conv1_bn.running_mean`), as initialisers, or as graph inputs in a
structural export (no weights). Inputs keep their Caffe names and shapes, the batch axis
symbolic ("batch") where the net takes any batch size.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from archc.export.common import (FILTER_REFUSAL, FORK_REFUSALS, STOCHASTIC_POOLING, ExportError,
                                 Parameters, Refusal, aligned_operand, average_correction,
                                 axpy_channels, batch_axes, caffe_arithmetic, caffe_outputs,
                                 crop_window, depthwise_window, form_for, last_writers,
                                 named_tensors, normalised_axis, pool_axes, recurrent_refusal,
                                 reduction_coefficient, refuse_rewritten_views, refused,
                                 registrar, shuffle_groups, spp_levels, tensor_shapes)
from archc.ir import LayerShapes, ShapedNet

TARGET = "ONNX"
OPSET = 17
IR_VERSION = 8  # the oldest that holds opset 17: runtimes from ONNX Runtime 1.11 on read it


class Graph:
    """Nodes and initialisers under construction, with unique tensor names."""

    def __init__(self, taken: set[str]):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.parameter_inputs: list[onnx.ValueInfoProto] = []
        self._taken = set(taken)
        self._constants: dict[tuple, str] = {}

    def fresh(self, base: str) -> str:
        """`base`, or `base~2`, `base~3`... : the first name no tensor has."""
        name, number = base, 2
        while name in self._taken:
            name, number = f"{base}~{number}", number + 1
        self._taken.add(name)
        return name

    def constant(self, values: np.ndarray) -> str:
        """An initialiser holding `values`, shared by every use of the same values."""
        key = (values.dtype.str, values.shape, values.tobytes())
        if key not in self._constants:
            name = self.fresh(f"constant{len(self._constants)}")
            self.initializers.append(numpy_helper.from_array(values, name))
            self._constants[key] = name
        return self._constants[key]


@dataclass
class Step:
    """One layer being written: its shapes, the names of its inputs' current values, the names
    its tops get, and its parameters (arrays, or None in a structural export)."""

    entry: LayerShapes
    inputs: list[str]
    outputs: list[str]
    tensors: dict[str, np.ndarray]
    structural: bool
    graph: Graph

    @property
    def op(self):
        return self.entry.layer.op

    @property
    def rank(self) -> int:
        return len(self.entry.inputs[0])

    def fresh(self, what: str) -> str:
        return self.graph.fresh(f"{self.entry.layer.name}#{what}")

    def node(self, op_type: str, inputs: list[str], output: str | None = None,
             **attributes) -> str:
        """Add a node with one output (the layer's first top unless named) and return its name."""
        output = output or self.outputs[0]
        self.graph.nodes.append(helper.make_node(op_type, inputs, [output], **attributes))
        return output

    def parameter(self, role: str, shape: tuple[int, ...] | None = None) -> str:
        """The tensor `LAYER.ROLE` (reshaped to `shape` to broadcast), as an initialiser, or as a
        graph input in a structural export."""
        values = self.tensors[role]
        if shape is not None:
            values = values.reshape(shape)
        name = self.graph.fresh(f"{self.entry.layer.name}.{role}")
        if self.structural:
            self.graph.parameter_inputs.append(
                helper.make_tensor_value_info(name, TensorProto.FLOAT, values.shape))
        else:
            self.graph.initializers.append(numpy_helper.from_array(values.astype(np.float32), name))
        return name

    def refuse(self, reason: str) -> ExportError:
        return refused(TARGET, self.entry.layer, reason)


#: Caffe type -> its ONNX form (a function writing a Step's nodes), or why it has none
FORMS: dict[str, Callable[[Step], None] | Refusal] = {}

form = registrar(FORMS)


def _ints(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _broadcast(rank: int) -> tuple[int, ...]:
    """A per-channel (axis 1) vector's shape against an input of `rank` axes."""
    return (-1,) + (1,) * (rank - 2)


def _window(op) -> dict:
    """The window attributes of ONNX's Conv and ConvTranspose for a Caffe op's window."""
    return dict(kernel_shape=[op.kernel_h, op.kernel_w], strides=[op.stride_h, op.stride_w],
                pads=[op.pad_h, op.pad_w, op.pad_h, op.pad_w], dilations=[op.dilation, op.dilation])


def _convolutional(step: Step, op_type: str) -> None:
    op = step.op
    inputs = [step.inputs[0], step.parameter("weight")]
    if op.bias_term:
        inputs.append(step.parameter("bias"))
    step.node(op_type, inputs, group=op.group, **_window(op))


@form("Convolution")
def convolution(step: Step) -> None:
    _convolutional(step, "Conv")


@form("BatchNorm")
def batch_norm(step: Step) -> None:
    op, x = step.op, step.inputs[0]
    if op.use_global_stats:
        channels = np.ones(step.entry.inputs[0][1], np.float32)
        step.node("BatchNormalization",
                  [x, step.graph.constant(channels), step.graph.constant(channels * 0),
                   step.parameter("running_mean"), step.parameter("running_var")],
                  epsilon=op.eps)
        return
    # Caffe normalises with the batch's own mean and (biased) variance over all axes but 1.
    centred, variance = _centred_and_variance(step, x, [0, *range(2, step.rank)])
    shifted = step.node("Add", [variance, step.graph.constant(np.float32(op.eps))],
                        step.fresh("variance_eps"))
    std = step.node("Sqrt", [shifted], step.fresh("std"))
    step.node("Div", [centred, std])


def _centred_and_variance(step: Step, x: str, axes: list[int]) -> tuple[str, str]:
    """x less its mean over `axes`, and the (biased) variance over them, as Caffe computes
    them: the mean of the squared differences."""
    mean = step.node("ReduceMean", [x], step.fresh("mean"), axes=axes)
    centred = step.node("Sub", [x, mean], step.fresh("centred"))
    squares = step.node("Mul", [centred, centred], step.fresh("squares"))
    return centred, step.node("ReduceMean", [squares], step.fresh("variance"), axes=axes)
def _operand(step: Step, role: str) -> str:
    """What Scale multiplies by or Bias adds, lined up with the input as Caffe applies it: the
    second bottom where the layer has one, else its tensor `role`."""
    shape = aligned_operand(step.entry)
    if len(step.inputs) == 1:
        return step.parameter(role, shape)
    operand = step.inputs[1]
    if shape == step.entry.inputs[1]:
        return operand
    return step.node("Reshape", [operand, step.graph.constant(_ints(shape))], step.fresh("aligned"))


@form("Scale")
def scale(step: Step) -> None:
    bias = step.op.bias_term
    scaled = step.node("Mul", [step.inputs[0], _operand(step, "weight")],
                       step.fresh("scaled") if bias else None)
    if bias:  # learned, whether the factors are or come from the second bottom
        step.node("Add", [scaled, step.parameter("bias", aligned_operand(step.entry))])


@form("ReLU")
def relu(step: Step) -> None:
    slope = step.op.negative_slope
    if slope:
        step.node("LeakyRelu", step.inputs, alpha=slope)
    else:
        step.node("Relu", step.inputs)


def _caffe_sigmoid(step: Step, x: str, output: str | None = None) -> str:
    # Caffe computes 0.5 * tanh(0.5 * x) + 0.5: the same function, rounded as Caffe rounds it.
    half = step.graph.constant(np.float32(0.5))
    halved = step.node("Mul", [x, half], step.fresh("halved"))
    tanh = step.node("Tanh", [halved], step.fresh("tanh"))
    return step.node("Add", [step.node("Mul", [tanh, half], step.fresh("tanh_halved")), half],
                     output)


@form("Sigmoid")
def sigmoid(step: Step) -> None:
    _caffe_sigmoid(step, step.inputs[0])


# ----- element-wise ops: Caffe's other neuron layers, Bias, and the layers that route blobs ----

@form("AbsVal")
def absval(step: Step) -> None:
    step.node("Abs", step.inputs)


@form("TanH")
def tanh(step: Step) -> None:
    step.node("Tanh", step.inputs)


@form("ELU")
def elu(step: Step) -> None:
    # Caffe's max(x, 0) + alpha * (exp(min(x, 0)) - 1) is ONNX's Elu, value for value
    step.node("Elu", step.inputs, alpha=step.op.alpha)


@form("BNLL")
def bnll(step: Step) -> None:
    # Caffe's x > 0 ? x + log(1 + exp(-x)) : log(1 + exp(x)) is max(x, 0) + log(1 + exp(-|x|)),
    # which never overflows (ONNX's Softplus is log(exp(x) + 1), which may).
    x = step.inputs[0]
    negated = step.node("Neg", [step.node("Abs", [x], step.fresh("abs"))], step.fresh("minus_abs"))
    plus_one = step.node("Add", [step.node("Exp", [negated], step.fresh("exp")),
                                 step.graph.constant(np.float32(1))], step.fresh("exp_plus_one"))
    step.node("Add", [step.node("Relu", [x], step.fresh("positive")),
                      step.node("Log", [plus_one], step.fresh("log"))])


_ARITHMETIC = {"mul": "Mul", "add": "Add", "pow": "Pow", "exp": "Exp", "log": "Log"}


@form("Power")
@form("Exp")
@form("Log")
def arithmetic(step: Step) -> None:
    x, operations = step.inputs[0], caffe_arithmetic(step.entry.layer)
    if not operations:
        step.node("Identity", [x])
    elif operations[0][0] == "fill":
        step.node("Expand", [step.graph.constant(operations[0][1]),
                             step.node("Shape", [x], step.fresh("shape"))])
    else:
        for index, (name, operand) in enumerate(operations, start=1):
            inputs = [x] if operand is None else [x, step.graph.constant(operand)]
            x = step.node(_ARITHMETIC[name], inputs,
                          None if index == len(operations) else step.fresh(name))


@form("Clip")
def clip(step: Step) -> None:
    # Caffe's max(min, min(x, max)): where min > max every value becomes min (ONNX's Clip gives max)
    below_max = step.node("Min", [step.inputs[0], step.graph.constant(np.float32(step.op.max))],
                          step.fresh("below_max"))
    step.node("Max", [below_max, step.graph.constant(np.float32(step.op.min))])


@form("Threshold")
def threshold(step: Step) -> None:
    threshold = step.graph.constant(np.float32(step.op.threshold))
    above = step.node("Greater", [step.inputs[0], threshold], step.fresh("above"))
    step.node("Cast", [above], to=TensorProto.FLOAT)


@form("Swish")
def swish(step: Step) -> None:
    # Caffe's x * sigmoid(beta * x), its inner Sigmoid layer's formula
    x, beta = step.inputs[0], np.float32(step.op.beta)
    scaled = (x if beta == 1 else
              step.node("Mul", [x, step.graph.constant(beta)], step.fresh("scaled")))
    step.node("Mul", [x, _caffe_sigmoid(step, scaled, step.fresh("sigmoid"))])


@form("PReLU")
def prelu(step: Step) -> None:
    # Caffe's max(x, 0) + slope * min(x, 0), a slope per channel (axis 1) or one for all
    step.node("PRelu", [step.inputs[0], step.parameter("slope", _broadcast(step.rank))])


@form("Bias")
def bias(step: Step) -> None:
    step.node("Add", [step.inputs[0], _operand(step, "bias")])


@form("Split")
def split(step: Step) -> None:
    for output in step.outputs:  # Caffe's tops share the bottom's data
        step.node("Identity", step.inputs, output)


@form("Silence")
def silence(step: Step) -> None:
    """Caffe's Silence computes nothing: no node (its bottoms are no outputs of the net)."""


@form("Parameter")
def parameter(step: Step) -> None:
    step.node("Identity", [step.parameter("value")])




@form("Dropout")
def dropout(step: Step) -> None:
    step.node("Identity", step.inputs)  # Caffe's Dropout copies its input at test time


@form("Softmax")
def softmax(step: Step) -> None:
    step.node("Softmax", step.inputs, axis=normalised_axis(step.op.axis, step.rank))


@form("Pooling")
def pooling(step: Step) -> None:
    op, x = step.op, step.inputs[0]
    if len(step.outputs) > 1:
        raise step.refuse("the argmax mask top (Caffe's in-plane index as a float) has no ONNX "
                          "form; drop the second top")
    if op.method == "STOCHASTIC":
        raise step.refuse(STOCHASTIC_POOLING)
    if op.global_pooling:
        step.node("GlobalMaxPool" if op.method == "MAX" else "GlobalAveragePool", [x])
        return
    rows, columns = pool_axes(step.entry)
    window = dict(kernel_shape=[rows.kernel, columns.kernel], strides=[rows.stride, columns.stride],
                  pads=[rows.pad, columns.pad, rows.pad_after, columns.pad_after])
    if op.method == "MAX":  # padding never wins a maximum, in Caffe as in ONNX
        step.node("MaxPool", [x], **window)
        return
    # Averaged over the whole kernel of the zero-padded input, then rescaled where Caffe divides
    # by less (a last window overhanging the padded input).
    correction = average_correction(step.entry)
    pooled = step.node("AveragePool", [x], None if correction is None else step.fresh("full"),
                       count_include_pad=1, **window)
    if correction is not None:
        step.node("Mul", [pooled, step.graph.constant(correction)])


@form("InnerProduct")
def inner_product(step: Step) -> None:
    x = step.inputs[0]
    if step.rank > 2:  # Caffe's InnerProduct reads axes 1 and after as one vector
        x = step.node("Flatten", [x], step.fresh("flat"), axis=1)
    inputs = [x, step.parameter("weight")]
    if step.op.bias_term:
        inputs.append(step.parameter("bias"))
    step.node("Gemm", inputs, transB=1)


@form("Reshape")
def reshape(step: Step) -> None:
    # ONNX's Reshape reads 0 (copy the axis) and -1 (infer it) as Caffe does.
    step.node("Reshape", [step.inputs[0], step.graph.constant(_ints(step.op.dims))])


@form("Flatten")
def flatten(step: Step) -> None:
    # ONNX's Flatten always makes 2 axes; Caffe's keeps the axes before `axis`.
    axis = normalised_axis(step.op.axis, step.rank)
    step.node("Reshape", [step.inputs[0], step.graph.constant(_ints([0] * axis + [-1]))])


@form("Slice")
def slice_(step: Step) -> None:
    axis = normalised_axis(step.op.axis, step.rank)
    sizes = _ints([shape[axis] for shape in step.entry.outputs])
    step.graph.nodes.append(helper.make_node(
        "Split", [step.inputs[0], step.graph.constant(sizes)], step.outputs, axis=axis))


@form("Concat")
def concat(step: Step) -> None:
    if len(step.inputs) == 1:
        step.node("Identity", step.inputs)
    else:
        step.node("Concat", step.inputs, axis=normalised_axis(step.op.axis, step.rank))


@form("Eltwise")
def eltwise(step: Step) -> None:
    op = step.op
    if op.operation == "MAX":
        step.node("Max", step.inputs)
    elif op.operation == "PROD":
        product = step.inputs[0]
        for index, x in enumerate(step.inputs[1:], start=1):
            last = index == len(step.inputs) - 1
            product = step.node("Mul", [product, x], None if last else step.fresh(f"product{index}"))
    else:  # Caffe's SUM adds coeff * input for each input, a coefficient of 1 by default
        terms = [x if coeff == 1 else
                 step.node("Mul", [x, step.graph.constant(np.float32(coeff))], step.fresh(f"term{i}"))
                 for i, (x, coeff) in enumerate(zip(step.inputs, op.coeff or [1] * len(step.inputs)))]
        step.node("Sum", terms)


# ----- structural ops: LRN, Deconvolution, Crop, MVN, Reduction, ArgMax, Tile, SPP, Embed,
# Im2col, BatchReindex, Filter and the recurrent layers ----------------------------------------

@form("LRN")
def lrn(step: Step) -> None:
    op, x = step.op, step.inputs[0]
    if op.norm_region == "ACROSS_CHANNELS":
        # ONNX's LRN is Caffe's: x * (k + alpha / size * the sum of squares over `size`
        # channels, zero-padded) ** -beta
        step.node("LRN", [x], size=op.local_size, alpha=op.alpha, beta=op.beta, bias=op.k)
        return
    # Caffe's WITHIN_CHANNEL, which ONNX's LRN is not, from the layers Caffe builds it of: the
    # squares averaged over a size x size window, zero-padded (the padding counts), then
    # x * (1 + alpha * average) ** -beta; k is not read.
    constant = step.graph.constant
    pad = (op.local_size - 1) // 2
    squares = step.node("Mul", [x, x], step.fresh("squares"))
    average = step.node("AveragePool", [squares], step.fresh("average"),
                        kernel_shape=[op.local_size] * 2, pads=[pad] * 4, count_include_pad=1)
    scaled = step.node("Mul", [average, constant(np.float32(op.alpha))], step.fresh("scaled"))
    shifted = step.node("Add", [scaled, constant(np.float32(1))], step.fresh("shifted"))
    factor = step.node("Pow", [shifted, constant(np.float32(-op.beta))], step.fresh("factor"))
    step.node("Mul", [x, factor])


@form("Deconvolution")
def deconvolution(step: Step) -> None:
    # Caffe's blob is ConvTranspose's weight: input channels x output channels / group x kernel
    _convolutional(step, "ConvTranspose")


@form("Crop")
def crop(step: Step) -> None:
    window = crop_window(step.entry)
    if not window:
        step.node("Identity", step.inputs[:1])
        return
    axes, offsets, sizes = (_ints(values) for values in zip(*window))
    constant = step.graph.constant
    step.node("Slice",
              [step.inputs[0], constant(offsets), constant(offsets + sizes), constant(axes)])


@form("MVN")
def mvn(step: Step) -> None:
    op, x = step.op, step.inputs[0]
    if step.rank < 4:  # Caffe's top is N x C x H x W, the axes the bottom lacks of size 1
        shape = _ints([0] * step.rank + [1] * (4 - step.rank))
        x = step.node("Reshape", [x, step.graph.constant(shape)], step.fresh("4d"))
    axes = [1, 2, 3] if op.across_channels else [2, 3]
    if not op.normalize_variance:
        mean = step.node("ReduceMean", [x], step.fresh("mean"), axes=axes)
        step.node("Sub", [x, mean])
        return
    # Caffe adds eps to the standard deviation, not to the variance
    centred, variance = _centred_and_variance(step, x, axes)
    deviation = step.node("Sqrt", [variance], step.fresh("deviation"))
    shifted = step.node("Add", [deviation, step.graph.constant(np.float32(op.eps))],
                        step.fresh("deviation_eps"))
    step.node("Div", [centred, shifted])


@form("Reduction")
def reduction(step: Step) -> None:
    op, x = step.op, step.inputs[0]
    axes = list(range(normalised_axis(op.axis, step.rank), step.rank))
    coefficient = reduction_coefficient(step.entry)
    reduced = None if coefficient == 1 else step.fresh("reduced")
    if op.operation in ("SUM", "MEAN"):  # opset 13 on, ReduceSum reads its axes as an input
        reduced = step.node("ReduceSum", [x, step.graph.constant(_ints(axes))], reduced, keepdims=0)
    else:
        reduced = step.node("ReduceL1" if op.operation == "ASUM" else "ReduceSumSquare", [x],
                            reduced, axes=axes, keepdims=0)
    if coefficient != 1:
        step.node("Mul", [reduced, step.graph.constant(coefficient)])


@form("ArgMax")
def argmax(step: Step) -> None:
    op, x, constant = step.op, step.inputs[0], step.graph.constant
    if op.axis is None:  # over each item's values, flattened
        axis, size = 1, int(np.prod(step.entry.inputs[0][1:]))
        x = step.node("Reshape", [x, constant(_ints([0, -1]))], step.fresh("flat"))
    else:
        axis = normalised_axis(op.axis, step.rank)
        size = step.entry.inputs[0][axis]
    # Caffe sorts (value, index) pairs, largest first: of equal values the later index comes
    # first, where TopK puts the earlier first; so TopK ranks the axis reversed, and its
    # positions are counted back from the end.
    last, before_first = _ints([-1]), _ints([np.iinfo(np.int64).min])
    reversed_ = step.node("Slice", [x, constant(last), constant(before_first),
                                    constant(_ints([axis])), constant(last)],
                          step.fresh("reversed"))
    values_only = op.out_max_val and op.axis is not None
    values = step.outputs[0] if values_only else step.fresh("values")
    positions = step.fresh("positions")
    step.graph.nodes.append(helper.make_node(
        "TopK", [reversed_, constant(_ints([op.top_k]))], [values, positions], axis=axis))
    if values_only:
        return
    indices = step.node("Sub", [constant(np.int64(size - 1)), positions], step.fresh("indices"))
    if op.axis is not None:
        step.node("Cast", [indices], to=TensorProto.FLOAT)
        return
    # N x (1 or 2) x top_k (x 1 ...): each item's indices, then with out_max_val its values
    indices = step.node("Cast", [indices], step.fresh("float_indices"), to=TensorProto.FLOAT)
    joined = step.node("Concat", [indices, values], step.fresh("joined"), axis=1) \
        if op.out_max_val else indices
    step.node("Reshape", [joined, constant(_ints([0, *step.entry.output[1:]]))])


@form("Tile")
def tile(step: Step) -> None:
    repeats = [1] * step.rank
    repeats[normalised_axis(step.op.axis, step.rank)] = step.op.tiles
    step.node("Tile", [step.inputs[0], step.graph.constant(_ints(repeats))])


@form("SPP")
def spp(step: Step) -> None:
    levels = spp_levels(step.entry)
    if len(levels) == 1:  # Caffe's own pooling, N x C x 1 x 1
        pooling(replace(step, entry=levels[0]))
        return
    flattened = []
    for index, level in enumerate(levels):
        pooled = step.fresh(f"level{index}")
        pooling(replace(step, entry=level, outputs=[pooled]))
        flattened.append(step.node("Reshape", [pooled, step.graph.constant(_ints([0, -1]))],
                                   step.fresh(f"level{index}_flat")))
    step.node("Concat", flattened, axis=1)


def _indices(step: Step, x: str) -> str:
    """Values read as indices: Caffe casts each to int, truncating, as Cast does."""
    return step.node("Cast", [x], step.fresh("indices"), to=TensorProto.INT64)


@form("Embed")
def embed(step: Step) -> None:
    bias = step.op.bias_term
    rows = step.node("Gather", [step.parameter("weight"), _indices(step, step.inputs[0])],
                     step.fresh("rows") if bias else None, axis=0)
    if bias:
        step.node("Add", [rows, step.parameter("bias")])


@form("Im2col")
def im2col(step: Step) -> None:
    # A convolution per channel whose kernels each pick one position of the window: channel c's
    # value at position p lands in output channel c * window + p, Caffe's order.
    op, channels = step.op, step.entry.inputs[0][1]
    window = op.kernel_h * op.kernel_w
    picks = np.eye(window, dtype=np.float32).reshape(window, 1, op.kernel_h, op.kernel_w)
    step.node("Conv", [step.inputs[0], step.graph.constant(np.tile(picks, (channels, 1, 1, 1)))],
              group=channels, **_window(op))


@form("BatchReindex")
def batch_reindex(step: Step) -> None:
    step.node("Gather", [step.inputs[0], _indices(step, step.inputs[1])], axis=0)


FORMS["Filter"] = FILTER_REFUSAL


def _lstm_unit(step: Step, c_previous: str, gates: str, cont: str,
               outputs: tuple[str | None, str | None]) -> tuple[str, str]:
    """One LSTMUnit step (lstm_unit_layer.cpp) on 1 x N x ... values: the gate inputs i, f, o, g
    along axis 2; cont, 1 x N x 1, scales the forget gate (0: a sequence starts). Writes c_t and
    h_t to `outputs` (None: fresh names) and returns their names."""
    parts = [step.fresh(gate) for gate in ("i", "f", "o", "g")]
    step.graph.nodes.append(helper.make_node("Split", [gates], parts, axis=2))
    i, forget, o = (step.node("Sigmoid", [part], step.fresh(f"{part}_sigmoid"))
                    for part in parts[:3])
    g = step.node("Tanh", [parts[3]], step.fresh("g_tanh"))
    f = step.node("Mul", [cont, forget], step.fresh("forget"))
    kept = step.node("Mul", [f, c_previous], step.fresh("kept"))
    added = step.node("Mul", [i, g], step.fresh("added"))
    c = step.node("Add", [kept, added], outputs[0] or step.fresh("c"))
    tanh_c = step.node("Tanh", [c], step.fresh("c_tanh"))
    return c, step.node("Mul", [o, tanh_c], outputs[1] or step.fresh("h"))


def _unsqueezed(step: Step, x: str, axis: int) -> str:
    return step.node("Unsqueeze", [x, step.graph.constant(_ints([axis]))], step.fresh("unsqueezed"))


@form("LSTMUnit")
def lstm_unit(step: Step) -> None:
    c_previous, gates, cont = step.inputs
    _lstm_unit(step, c_previous, gates, _unsqueezed(step, cont, 2), tuple(step.outputs))


def _recurrent(step: Step, gate: str) -> None:
    """LSTM (gate "c") or RNN (gate "h") as Caffe unrolls it over the T steps of x: the parameter
    names are its unrolled net's, W_x<gate>, b_<gate>, W_x<gate>_static, W_h<gate>."""
    error = recurrent_refusal(step.entry.layer, TARGET)
    if error is not None:
        raise error
    op, constant = step.op, step.graph.constant
    steps = step.entry.inputs[0][0]
    states = step.inputs[len(step.inputs) - len(op.states):]

    def transposed(role: str) -> str:
        return step.node("Transpose", [step.parameter(role)], step.fresh(f"{role}_T"))

    def transform(x: str, role: str, what: str) -> str:
        return step.node("MatMul", [x, transposed(role)], step.fresh(what))

    flat = step.node("Reshape", [step.inputs[0], constant(_ints([0, 0, -1]))], step.fresh("x_flat"))
    x_transformed = step.node("Add", [transform(flat, f"W_x{gate}", "x_product"),
                                      step.parameter(f"b_{gate}")], step.fresh("x_transformed"))
    static = None
    if len(step.inputs) > 2 + len(states):  # x_static: its transform is added at every step
        static_flat = step.node("Reshape", [step.inputs[2], constant(_ints([0, -1]))],
                                step.fresh("x_static_flat"))
        static_product = transform(static_flat, f"W_x{gate}_static", "x_static_product")
        static = _unsqueezed(step, static_product, 0)
    # one step each, the sizes given so that an input of another length is an error
    x_steps = [step.fresh(f"x_{t}") for t in range(1, steps + 1)]
    conts = [step.fresh(f"cont_{t}") for t in range(1, steps + 1)]
    ones = constant(_ints([1] * steps))
    step.graph.nodes.append(helper.make_node("Split", [x_transformed, ones], x_steps, axis=0))
    step.graph.nodes.append(helper.make_node("Split", [step.inputs[1], ones], conts, axis=0))
    hidden_weights = transposed(f"W_h{gate}")
    output_weights = transposed("W_ho") if gate == "h" else None
    outputs = []
    for x_t, cont in zip(x_steps, conts):
        cont = _unsqueezed(step, cont, 2)
        conted = step.node("Mul", [states[0], cont], step.fresh("h_conted"))
        hidden = step.node("MatMul", [conted, hidden_weights], step.fresh("h_product"))
        gates = step.node("Add", [hidden, x_t], step.fresh("gate_input"))
        if static is not None:
            gates = step.node("Add", [gates, static], step.fresh("gate_input_static"))
        if gate == "c":
            c, h = _lstm_unit(step, states[1], gates, cont, (None, None))
            states = [h, c]
            outputs.append(h)
        else:
            h = step.node("Tanh", [gates], step.fresh("h"))
            states = [h]
            product = step.node("MatMul", [h, output_weights], step.fresh("o_product"))
            biased = step.node("Add", [product, step.parameter("b_o")], step.fresh("o_input"))
            outputs.append(step.node("Tanh", [biased], step.fresh("o")))
    step.node("Concat", outputs, axis=0)
    for state, name in zip(states, step.outputs[1:]):  # h_T (and c_T), exposed
        step.node("Identity", [state], name)


@form("LSTM")
def lstm(step: Step) -> None:
    _recurrent(step, "c")


@form("RNN")
def rnn(step: Step) -> None:
    _recurrent(step, "h")



# ----- fork layer types (declared in .arch files; see common.py for what each form assumes) ---

@form("Axpy")
def axpy(step: Step) -> None:
    # a * x + y, the gate a (N x C or N x C x 1...) broadcast over x's other axes
    channels, rank = axpy_channels(TARGET, step.entry), len(step.entry.inputs[1])
    gate, x, y = step.inputs
    if len(step.entry.inputs[0]) != rank:
        shape = _ints([-1, channels, *(1,) * (rank - 2)])
        gate = step.node("Reshape", [gate, step.graph.constant(shape)], step.fresh("gate"))
    scaled = step.node("Mul", [gate, x], step.fresh("scaled"))
    step.node("Add", [scaled, y])


@form("ConvolutionDepthwise")
def convolution_depthwise(step: Step) -> None:
    # the fork's per-channel loop is a Conv with one group per channel, Caffe's weight layout
    window = depthwise_window(TARGET, step.entry)
    inputs = [step.inputs[0], step.parameter("weight")]
    if window.bias_term:
        inputs.append(step.parameter("bias"))
    step.node("Conv", inputs, group=window.channels, kernel_shape=[window.kernel] * 2,
              strides=[window.stride] * 2, pads=[window.pad] * 4, dilations=[window.dilation] * 2)


@form("ShuffleChannel")
def shuffle_channel(step: Step) -> None:
    group, shape = shuffle_groups(TARGET, step.entry), step.entry.inputs[0]
    constant = step.graph.constant
    rows = step.node("Reshape", [step.inputs[0], constant(_ints([0, group, -1, *shape[2:]]))],
                     step.fresh("rows"))
    transposed = step.node("Transpose", [rows], step.fresh("transposed"),
                           perm=[0, 2, 1, *range(3, len(shape) + 1)])
    step.node("Reshape", [transposed, constant(_ints([0, *shape[1:]]))])


FORMS.update(FORK_REFUSALS)


def to_onnx(shaped: ShapedNet, parameters: Parameters | None, outputs: list[str] | None = None,
            doc: str = "") -> onnx.ModelProto:
    """The net as an ONNX model, checked with `onnx.checker`. `parameters`: every layer's blobs
    (None: a structural export, the parameters graph inputs); `outputs`: the blobs the model
    returns (default: Caffe's outputs). Raises ExportError naming a layer it cannot export."""
    net = shaped.net
    refuse_rewritten_views(TARGET, shaped)
    outputs = outputs or caffe_outputs(net)
    graph = Graph(set(shaped.blobs))
    writers = last_writers(shaped)
    current = {name: name for name in net.inputs}
    for entry in shaped.layers:
        layer = entry.layer
        names = [top if writers[top] == layer.name and top not in net.inputs
                 else graph.fresh(f"{top}#{layer.name}") for top in layer.tops]
        if parameters is None:
            tensors = {role: np.zeros(shape, np.float32)
                       for role, shape in tensor_shapes(entry).items()}
        else:
            tensors = named_tensors(layer, parameters[layer.name]) if entry.param_shapes else {}
        step = Step(entry, [current[bottom] for bottom in layer.bottoms], names, tensors,
                    parameters is None, graph)
        form_for(TARGET, FORMS, layer)(step)
        current.update(zip(layer.tops, names))
    axes = batch_axes(net)

    def value_info(blob: str, name: str) -> onnx.ValueInfoProto:
        shape = shaped.blobs[blob]
        symbolic = () if axes is None else axes[blob]
        return helper.make_tensor_value_info(
            name, TensorProto.FLOAT,
            ["batch" if axis in symbolic else size for axis, size in enumerate(shape)])

    model = helper.make_model(
        helper.make_graph(graph.nodes, net.name or "net",
                          [value_info(name, name) for name in net.inputs] + graph.parameter_inputs,
                          [value_info(blob, current[blob]) for blob in outputs],
                          graph.initializers, doc_string=doc),
        opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
        producer_name="archc")
    onnx.checker.check_model(model, full_check=True)
    return model
