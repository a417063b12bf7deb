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
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from archc.export.common import (NOT_YET_EXPORTED, ExportError, Parameters, Refusal,
                                 aligned_operand, average_correction, batch_axes,
                                 caffe_arithmetic, caffe_outputs, form_for, last_writers,
                                 named_tensors, normalised_axis, pool_axes, refuse_rewritten_views,
                                 refused, registrar, tensor_shapes)
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
FORMS: dict[str, Callable[[Step], None] | Refusal] = dict(NOT_YET_EXPORTED)

form = registrar(FORMS)


def _ints(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _broadcast(rank: int) -> tuple[int, ...]:
    """A per-channel (axis 1) vector's shape against an input of `rank` axes."""
    return (-1,) + (1,) * (rank - 2)


@form("Convolution")
def convolution(step: Step) -> None:
    op = step.op
    inputs = [step.inputs[0], step.parameter("weight")]
    if op.bias_term:
        inputs.append(step.parameter("bias"))
    step.node("Conv", inputs, kernel_shape=[op.kernel_h, op.kernel_w],
              strides=[op.stride_h, op.stride_w], pads=[op.pad_h, op.pad_w, op.pad_h, op.pad_w],
              dilations=[op.dilation, op.dilation], group=op.group)


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
    axes = [0, *range(2, step.rank)]
    mean = step.node("ReduceMean", [x], step.fresh("mean"), axes=axes)
    centred = step.node("Sub", [x, mean], step.fresh("centred"))
    squares = step.node("Mul", [centred, centred], step.fresh("squares"))
    variance = step.node("ReduceMean", [squares], step.fresh("variance"), axes=axes)
    shifted = step.node("Add", [variance, step.graph.constant(np.float32(op.eps))],
                        step.fresh("variance_eps"))
    std = step.node("Sqrt", [shifted], step.fresh("std"))
    step.node("Div", [centred, std])


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
