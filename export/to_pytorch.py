"""The net as PyTorch: a readable `model.py` (one `nn.Module`, `Net`) and its state dict, with
`FORMS`: each Caffe op's PyTorch form, or its `Refusal`.

A form gives the layer's module (built in `__init__` as `self.ATTRIBUTE`, where the layer holds
parameters or settings) and the expression `forward` computes its tops with, as `torch_code`
nodes: the same program is printed into model.py and evaluated by archc's torch backend.

Names: a layer's attribute and a blob's variable are its Caffe name made an ASCII identifier
(other characters become `_`; a name not starting with a letter gets `layer_`/`blob_` before it;
one that is a Python keyword or an `nn.Module` attribute gets `_` after it; a name already taken
gets `_2`, `_3`...), deterministically, in the net's order. model.py keeps the mapping in
`CAFFE_LAYERS`; the state dict's keys are `ATTRIBUTE.ROLE`.
"""
from __future__ import annotations

import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import jinja2
import numpy as np

from archc.export.common import (FILTER_REFUSAL, FORK_REFUSALS, STOCHASTIC_POOLING, ExportError,
                                 Parameters, Refusal, aligned_operand, axpy_channels,
                                 caffe_arithmetic, caffe_outputs, crop_window, depthwise_window,
                                 form_for, named_tensors, normalised_axis, pool_axes,
                                 recurrent_refusal, reduction_coefficient, refuse_rewritten_views,
                                 refused, registrar, shuffle_groups, spp_levels, tensor_shapes)
from archc.export.torch_code import (Attribute, Binary, Variable, call, evaluate, method,
                                     render)
from archc.ir import LayerShapes, ShapedNet
from archc.ir.ops.base import short_float

TARGET = "PyTorch"

#: every attribute an nn.Module instance has (torch 2.x; a test checks it against the installed
#: torch): a layer attribute of one of these names would replace it
MODULE_ATTRIBUTES = frozenset("""
T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda double
dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule
half ipu load_state_dict modules mtia named_buffers named_children named_modules named_parameters
parameters register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook
register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook
register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule share_memory state_dict
to to_empty train training type xpu zero_grad
""".split())
#: names forward's variables must not take: its `self` and the modules model.py imports
RESERVED_VARIABLES = frozenset({"self", "torch", "nn", "F"})


@dataclass(frozen=True)
class TorchForm:
    """A layer in PyTorch: the expression for its tops, and the module `self.ATTRIBUTE` it reads
    (None: a function of its inputs alone); `buffers`: state the module keeps beside the layer's
    Caffe tensors (BatchNorm's batch counter)."""

    value: object
    module: object = None
    buffers: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Step:
    """One layer being written: its shapes, its inputs' variables, its module attribute, its
    tensors' roles and shapes, forward's variable names taken so far, and the statements that
    come before the layer's own (`local`)."""

    entry: LayerShapes
    inputs: list[Variable]
    module: Attribute
    tensors: dict[str, tuple[int, ...]]
    variables: set[str]
    prelude: list[Statement] = field(default_factory=list)

    def local(self, what: str, value) -> Variable:
        """`value` assigned to a fresh variable of forward (LAYER_WHAT) before the layer's own
        statement: for a value read more than once, or a step of an unrolled loop."""
        name = identifier(f"{self.entry.layer.name}_{what}", "blob", RESERVED_VARIABLES,
                          self.variables)
        self.prelude.append(Statement((name,), value))
        return Variable(name)

    @property
    def op(self):
        return self.entry.layer.op

    @property
    def rank(self) -> int:
        return len(self.entry.inputs[0])

    def refuse(self, reason: str) -> ExportError:
        return refused(TARGET, self.entry.layer, reason)


#: Caffe type -> its PyTorch form (a function of a Step giving a TorchForm), or why it has none
FORMS: dict[str, Callable[[Step], TorchForm] | Refusal] = {}

form = registrar(FORMS)


def _side(height: int, width: int) -> int | tuple[int, int]:
    return height if height == width else (height, width)


def _options(**values) -> dict:
    """Keyword arguments without those at PyTorch's defaults (given as (value, default))."""
    return {key: value for key, (value, default) in values.items() if value != default}


def _convolutional(step: Step, module_type: str) -> TorchForm:
    op = step.op
    module = call(module_type, step.entry.inputs[0][1], op.num_output,
                  kernel_size=_side(op.kernel_h, op.kernel_w),
                  **_options(stride=(_side(op.stride_h, op.stride_w), 1),
                             padding=(_side(op.pad_h, op.pad_w), 0),
                             dilation=(op.dilation, 1), groups=(op.group, 1),
                             bias=(op.bias_term, True)))
    return TorchForm(call(step.module, step.inputs[0]), module)


@form("Convolution")
def convolution(step: Step) -> TorchForm:
    return _convolutional(step, "nn.Conv2d")


_BATCH_NORMS = {2: "nn.BatchNorm1d", 3: "nn.BatchNorm1d", 4: "nn.BatchNorm2d", 5: "nn.BatchNorm3d"}


@form("BatchNorm")
def batch_norm(step: Step) -> TorchForm:
    op = step.op
    if step.rank not in _BATCH_NORMS:
        raise step.refuse(f"PyTorch's BatchNorm takes 2 to 5 axes, and this input has {step.rank}")
    # Global statistics: the stored ones (divided by Caffe's moving-average factor at export);
    # else Caffe normalises with the batch's own, as a BatchNorm that tracks none does.
    module = call(_BATCH_NORMS[step.rank], step.entry.inputs[0][1], eps=op.eps, affine=False,
                  **_options(track_running_stats=(op.use_global_stats, True)))
    buffers = {"num_batches_tracked": np.array(0, np.int64)} if op.use_global_stats else {}
    return TorchForm(call(step.module, step.inputs[0]), module, buffers)


def _learned(step: Step, initial: dict[str, float]):
    """The layer's tensors as an nn.ParameterDict by role, each filled with `initial[role]`
    (Caffe's default filler) until the state dict is loaded; None where it has none."""
    if not step.tensors:
        return None
    return call("nn.ParameterDict",
                {role: call("nn.Parameter", call("torch.full", shape, initial[role]))
                 for role, shape in step.tensors.items()})


def _aligned(step: Step, operand, shape: tuple[int, ...]):
    """Scale's or Bias's `operand` (of `shape`) lined up with the input as Caffe applies it."""
    aligned = aligned_operand(step.entry)
    return operand if shape == aligned else method(operand, "reshape", *aligned)


def _operand(step: Step, role: str):
    """What Scale multiplies by or Bias adds: the second bottom where the layer has one, else its
    tensor `role`."""
    if len(step.inputs) == 1:
        return _aligned(step, Attribute(role, step.module), step.tensors[role])
    return _aligned(step, step.inputs[1], step.entry.inputs[1])


@form("Scale")
def scale(step: Step) -> TorchForm:
    value = Binary("*", step.inputs[0], _operand(step, "weight"))
    if step.op.bias_term:  # learned, whether the factors are or come from the second bottom
        value = Binary("+", value, _aligned(step, Attribute("bias", step.module),
                                            step.tensors["bias"]))
    return TorchForm(value, _learned(step, {"weight": 1.0, "bias": 0.0}))


@form("ReLU")
def relu(step: Step) -> TorchForm:
    slope = step.op.negative_slope
    if slope:
        return TorchForm(call("F.leaky_relu", step.inputs[0], slope))
    return TorchForm(call("F.relu", step.inputs[0]))


def _caffe_sigmoid(x):
    # Caffe computes 0.5 * tanh(0.5 * x) + 0.5: the same function, rounded as Caffe rounds it.
    return Binary("+", Binary("*", call("torch.tanh", Binary("*", x, 0.5)), 0.5), 0.5)


@form("Sigmoid")
def sigmoid(step: Step) -> TorchForm:
    return TorchForm(_caffe_sigmoid(step.inputs[0]))


# ----- element-wise ops: Caffe's other neuron layers, Bias, and the layers that route blobs ----

def _constant(value) -> float:
    """A float32 constant as the shortest Python float that is the same float32 (PyTorch reads a
    Python number as the tensor's type, float32 for Caffe's blobs)."""
    return short_float(float(value))


@form("AbsVal")
def absval(step: Step) -> TorchForm:
    return TorchForm(call("torch.abs", step.inputs[0]))


@form("TanH")
def tanh(step: Step) -> TorchForm:
    return TorchForm(call("torch.tanh", step.inputs[0]))


@form("ELU")
def elu(step: Step) -> TorchForm:
    # Caffe's max(x, 0) + alpha * (exp(min(x, 0)) - 1), PyTorch's elu
    return TorchForm(call("F.elu", step.inputs[0], _constant(step.op.alpha)))


@form("BNLL")
def bnll(step: Step) -> TorchForm:
    # Caffe's x > 0 ? x + log(1 + exp(-x)) : log(1 + exp(x)); softplus gives x itself above 20,
    # where Caffe's value rounds to x in float32 too
    return TorchForm(call("F.softplus", step.inputs[0]))


@form("Power")
@form("Exp")
@form("Log")
def arithmetic(step: Step) -> TorchForm:
    value = step.inputs[0]
    for name, operand in caffe_arithmetic(step.entry.layer):
        if name == "fill":
            value = call("torch.full_like", value, _constant(operand))
        elif name in ("mul", "add"):
            value = Binary("*" if name == "mul" else "+", value, _constant(operand))
        elif name == "pow":
            value = call("torch.pow", value, _constant(operand))
        else:
            value = call(f"torch.{name}", value)
    return TorchForm(value)


@form("Clip")
def clip(step: Step) -> TorchForm:
    # Caffe's max(min, min(x, max)): where min > max every value becomes min (one clamp gives max)
    below_max = call("torch.clamp", step.inputs[0], max=_constant(step.op.max))
    return TorchForm(method(below_max, "clamp", min=_constant(step.op.min)))


@form("Threshold")
def threshold(step: Step) -> TorchForm:
    x = step.inputs[0]
    return TorchForm(method(call("torch.gt", x, _constant(step.op.threshold)), "type_as", x))


@form("Swish")
def swish(step: Step) -> TorchForm:
    # Caffe's x * sigmoid(beta * x), its inner Sigmoid layer's formula
    x, beta = step.inputs[0], _constant(step.op.beta)
    return TorchForm(Binary("*", x, _caffe_sigmoid(x if beta == 1 else Binary("*", x, beta))))


@form("PReLU")
def prelu(step: Step) -> TorchForm:
    # Caffe's max(x, 0) + slope * min(x, 0), a slope per channel (axis 1) or one for all
    return TorchForm(call("F.prelu", step.inputs[0], Attribute("slope", step.module)),
                     _learned(step, {"slope": 0.25}))


@form("Bias")
def bias(step: Step) -> TorchForm:
    return TorchForm(Binary("+", step.inputs[0], _operand(step, "bias")),
                     _learned(step, {"bias": 0.0}))


@form("Split")
def split(step: Step) -> TorchForm:
    x = step.inputs[0]  # Caffe's tops share the bottom's data
    tops = len(step.entry.layer.tops)
    return TorchForm((x,) * tops if tops > 1 else x)


@form("Silence")
def silence(step: Step) -> TorchForm:
    return TorchForm(())  # no tops: forward computes nothing for it


@form("Parameter")
def parameter(step: Step) -> TorchForm:
    return TorchForm(Attribute("value", step.module), _learned(step, {"value": 0.0}))


@form("Dropout")
def dropout(step: Step) -> TorchForm:
    # the identity at inference, as in Caffe's test phase (Net is built in eval mode)
    return TorchForm(call(step.module, step.inputs[0]), call("nn.Dropout", step.op.ratio))


@form("Softmax")
def softmax(step: Step) -> TorchForm:
    return TorchForm(call("F.softmax", step.inputs[0], dim=normalised_axis(step.op.axis, step.rank)))


@form("Pooling")
def pooling(step: Step) -> TorchForm:
    op, x = step.op, step.inputs[0]
    if len(step.entry.layer.tops) > 1:
        raise step.refuse("the argmax mask top (Caffe's in-plane index as a float) is not "
                          "exported; drop the second top")
    if op.method == "STOCHASTIC":
        raise step.refuse(STOCHASTIC_POOLING)
    if op.global_pooling:
        return TorchForm(method(x, "amax" if op.method == "MAX" else "mean", (2, 3), keepdim=True))
    rows, columns = pool_axes(step.entry)
    if 2 * rows.pad > rows.kernel or 2 * columns.pad > columns.kernel:
        raise step.refuse(f"PyTorch pools with at most half the kernel as padding, and this layer "
                          f"pads {rows.pad} x {columns.pad} for a {rows.kernel} x {columns.kernel} "
                          f"kernel (the ONNX export computes it)")
    # PyTorch's ceil mode drops a last window that would start in the padding, as Caffe does, and
    # its average divides by the window clipped to the padded input, as Caffe's does.
    window = dict(kernel_size=_side(rows.kernel, columns.kernel),
                  stride=_side(rows.stride, columns.stride),
                  **_options(padding=(_side(rows.pad, columns.pad), 0),
                             ceil_mode=(op.rounding == "ceil", False)))
    if op.method == "MAX":
        module = call("nn.MaxPool2d", **window)
    else:
        module = call("nn.AvgPool2d", **window, count_include_pad=True)
    return TorchForm(call(step.module, x), module)


@form("InnerProduct")
def inner_product(step: Step) -> TorchForm:
    op, x = step.op, step.inputs[0]
    inputs = int(np.prod(step.entry.inputs[0][1:]))
    module = call("nn.Linear", inputs, op.num_output, **_options(bias=(op.bias_term, True)))
    if step.rank > 2:  # Caffe's InnerProduct reads axes 1 and after as one vector
        x = call("torch.flatten", x, 1)
    return TorchForm(call(step.module, x), module)


@form("Reshape")
def reshape(step: Step) -> TorchForm:
    # Caffe's 0 copies the input's axis; -1 is inferred, as in PyTorch
    x = step.inputs[0]
    dims = [method(x, "size", axis) if dim == 0 else dim for axis, dim in enumerate(step.op.dims)]
    return TorchForm(method(x, "reshape", *dims))


@form("Flatten")
def flatten(step: Step) -> TorchForm:
    return TorchForm(call("torch.flatten", step.inputs[0], normalised_axis(step.op.axis, step.rank)))


@form("Slice")
def slice_(step: Step) -> TorchForm:
    axis = normalised_axis(step.op.axis, step.rank)
    sizes = [shape[axis] for shape in step.entry.outputs]
    return TorchForm(call("torch.split", step.inputs[0], sizes, dim=axis))


@form("Concat")
def concat(step: Step) -> TorchForm:
    if len(step.inputs) == 1:
        return TorchForm(step.inputs[0])
    return TorchForm(call("torch.cat", list(step.inputs), dim=normalised_axis(step.op.axis, step.rank)))


@form("Eltwise")
def eltwise(step: Step) -> TorchForm:
    op, inputs = step.op, step.inputs
    if op.operation == "MAX":
        value = inputs[0]
        for x in inputs[1:]:
            value = call("torch.maximum", value, x)
        return TorchForm(value)
    if op.operation == "PROD":
        terms, joiner = list(inputs), "*"
    else:  # Caffe's SUM adds coeff * input for each input, a coefficient of 1 by default
        coefficients = op.coeff or [1] * len(inputs)
        terms = [x if c == 1 else Binary("*", x, c) for x, c in zip(inputs, coefficients)]
        joiner = "+"
    value = terms[0]
    for term in terms[1:]:
        value = Binary(joiner, value, term)
    return TorchForm(value)


# ----- structural ops: LRN, Deconvolution, Crop, MVN, Reduction, ArgMax, Tile, SPP, Embed,
# Im2col, BatchReindex, Filter and the recurrent layers ----------------------------------------

def _parameters(step: Step):
    """The layer's tensors by role, as an nn.ParameterDict (the state dict fills them)."""
    return call("nn.ParameterDict", {role: call("nn.Parameter", call("torch.zeros", *shape))
                                     for role, shape in step.tensors.items()})


@form("LRN")
def lrn(step: Step) -> TorchForm:
    op, x = step.op, step.inputs[0]
    if op.norm_region == "ACROSS_CHANNELS":
        # PyTorch's is Caffe's: x * (k + alpha / size * the sum of squares over `size`
        # channels, zero-padded) ** -beta
        return TorchForm(call("F.local_response_norm", x, op.local_size, alpha=op.alpha,
                              beta=op.beta, k=op.k))
    # Caffe's WITHIN_CHANNEL, from the layers Caffe builds it of: the squares averaged over a
    # size x size window, zero-padded (the padding counts), then x * (1 + alpha * average)
    # ** -beta; k is not read.
    average = call("F.avg_pool2d", Binary("*", x, x), op.local_size, stride=1,
                   padding=(op.local_size - 1) // 2)
    return TorchForm(Binary("*", x, method(Binary("+", Binary("*", average, op.alpha), 1.0),
                                           "pow", -op.beta)))


@form("Deconvolution")
def deconvolution(step: Step) -> TorchForm:
    # Caffe's blob is ConvTranspose2d's weight: input channels x output channels / group x kernel
    return _convolutional(step, "nn.ConvTranspose2d")


@form("Crop")
def crop(step: Step) -> TorchForm:
    value = step.inputs[0]
    for axis, offset, size in crop_window(step.entry):
        value = method(value, "narrow", axis, offset, size)
    return TorchForm(value)


@form("MVN")
def mvn(step: Step) -> TorchForm:
    op, x = step.op, step.inputs[0]
    if step.rank < 4:  # Caffe's top is N x C x H x W, the axes the bottom lacks of size 1
        x = method(x, "reshape", *(method(x, "size", axis) for axis in range(step.rank)),
                   *(1,) * (4 - step.rank))
    axes = (1, 2, 3) if op.across_channels else (2, 3)
    centred = method(x, "sub", method(x, "mean", axes, keepdim=True))
    if not op.normalize_variance:
        return TorchForm(centred)
    # Caffe adds eps to the standard deviation, not to the variance
    centred = step.local("centred", centred)
    variance = method(Binary("*", centred, centred), "mean", axes, keepdim=True)
    return TorchForm(method(centred, "div", Binary("+", method(variance, "sqrt"), op.eps)))


@form("Reduction")
def reduction(step: Step) -> TorchForm:
    op, x = step.op, step.inputs[0]
    values = {"ASUM": method(x, "abs"), "SUMSQ": Binary("*", x, x)}.get(op.operation, x)
    reduced = method(values, "sum", tuple(range(normalised_axis(op.axis, step.rank), step.rank)))
    coefficient = reduction_coefficient(step.entry)
    return TorchForm(reduced if coefficient == 1 else Binary("*", reduced, float(coefficient)))


@form("ArgMax")
def argmax(step: Step) -> TorchForm:
    op, x = step.op, step.inputs[0]
    if op.axis is None:  # over each item's values, flattened
        axis, size = 1, int(np.prod(step.entry.inputs[0][1:]))
        x = call("torch.flatten", x, 1)
    else:
        axis = normalised_axis(op.axis, step.rank)
        size = step.entry.inputs[0][axis]
    # Caffe sorts (value, index) pairs, largest first: of equal values the later index comes
    # first. A stable sort of the reversed axis puts them so; positions count from the end.
    ranked = step.local("ranked", call("torch.sort", call("torch.flip", x, [axis]), dim=axis,
                                       descending=True, stable=True))
    values = method(Attribute("values", ranked), "narrow", axis, 0, op.top_k)
    positions = method(Attribute("indices", ranked), "narrow", axis, 0, op.top_k)
    indices = method(Binary("+", Binary("*", positions, -1), size - 1), "float")
    if op.axis is not None:
        return TorchForm(values if op.out_max_val else indices)
    # N x (1 or 2) x top_k (x 1 ...): each item's indices, then with out_max_val its values
    parts = [indices, values] if op.out_max_val else [indices]
    return TorchForm(method(call("torch.stack", parts, 1), "reshape", -1, *step.entry.output[1:]))


@form("Tile")
def tile(step: Step) -> TorchForm:
    repeats = [1] * step.rank
    repeats[normalised_axis(step.op.axis, step.rank)] = step.op.tiles
    return TorchForm(method(step.inputs[0], "repeat", *repeats))


@form("SPP")
def spp(step: Step) -> TorchForm:
    levels = spp_levels(step.entry)
    if len(levels) == 1:  # Caffe's own pooling, N x C x 1 x 1
        return pooling(replace(step, entry=levels[0]))
    modules, flattened = {}, []
    for index, level in enumerate(levels):
        made = pooling(replace(step, entry=level, module=Attribute(f"level{index}", step.module)))
        modules[f"level{index}"] = made.module
        flattened.append(call("torch.flatten", made.value, 1))
    return TorchForm(call("torch.cat", flattened, dim=1), call("nn.ModuleDict", modules))


@form("Embed")
def embed(step: Step) -> TorchForm:
    # Caffe casts each value to int, truncating, as .long() does
    rows = call("F.embedding", method(step.inputs[0], "long"), Attribute("weight", step.module))
    if step.op.bias_term:
        rows = Binary("+", rows, Attribute("bias", step.module))
    return TorchForm(rows, _parameters(step))


@form("Im2col")
def im2col(step: Step) -> TorchForm:
    # F.unfold orders the windows' values as Caffe does: channel c's position p at c * window + p
    op = step.op
    unfolded = call("F.unfold", step.inputs[0], _side(op.kernel_h, op.kernel_w),
                    **_options(dilation=(op.dilation, 1), padding=(_side(op.pad_h, op.pad_w), 0),
                               stride=(_side(op.stride_h, op.stride_w), 1)))
    return TorchForm(method(unfolded, "unflatten", 2, step.entry.output[2:]))


@form("BatchReindex")
def batch_reindex(step: Step) -> TorchForm:
    data, indices = step.inputs
    return TorchForm(call("torch.index_select", data, 0, method(indices, "long")))


FORMS["Filter"] = FILTER_REFUSAL


def _lstm_unit(step: Step, c_previous, gates, cont, hidden: int,
               cell: str) -> tuple[Variable, object]:
    """One LSTMUnit step (lstm_unit_layer.cpp) on 1 x N x ... values: the gate inputs i, f, o, g
    along axis 2, `hidden` each; cont, 1 x N x 1, scales the forget gate (0: a sequence
    starts). c_t, as the variable LAYER_CELL, and h_t."""
    def gate(index: int, function: str):
        return call(function, method(gates, "narrow", 2, index * hidden, hidden))
    forget = Binary("*", Binary("*", cont, gate(1, "torch.sigmoid")), c_previous)
    c = step.local(cell, Binary("+", forget, Binary("*", gate(0, "torch.sigmoid"),
                                                   gate(3, "torch.tanh"))))
    return c, Binary("*", gate(2, "torch.sigmoid"), call("torch.tanh", c))


@form("LSTMUnit")
def lstm_unit(step: Step) -> TorchForm:
    c_previous, gates, cont = step.inputs
    c, h = _lstm_unit(step, c_previous, gates, method(cont, "unsqueeze", 2),
                      step.entry.inputs[0][2], "cell")
    return TorchForm((c, h))


def _recurrent(step: Step, gate: str) -> TorchForm:
    """LSTM (gate "c") or RNN (gate "h") as Caffe unrolls it over the T steps of x: the parameter
    names are its unrolled net's, W_x<gate>, b_<gate>, W_x<gate>_static, W_h<gate>."""
    error = recurrent_refusal(step.entry.layer, TARGET)
    if error is not None:
        raise error
    op = step.op
    states = list(step.inputs[len(step.inputs) - len(op.states):])

    def weight(role: str):
        return Attribute(role, step.module)

    flat = call("torch.flatten", step.inputs[0], 2)
    x_transformed = step.local("x_transformed", call("F.linear", flat, weight(f"W_x{gate}"),
                                                     weight(f"b_{gate}")))
    static = None
    if len(step.inputs) > 2 + len(states):  # x_static: its transform is added at every step
        static = step.local("x_static_transformed", method(call(
            "F.linear", call("torch.flatten", step.inputs[2], 1), weight(f"W_x{gate}_static")),
            "unsqueeze", 0))
    outputs = []
    for t in range(step.entry.inputs[0][0]):
        cont = step.local(f"cont_{t + 1}",
                          method(method(step.inputs[1], "narrow", 0, t, 1), "unsqueeze", 2))
        gates = Binary("+", call("F.linear", Binary("*", states[0], cont), weight(f"W_h{gate}")),
                       method(x_transformed, "narrow", 0, t, 1))
        if static is not None:
            gates = Binary("+", gates, static)
        if gate == "c":
            c, h = _lstm_unit(step, states[1], step.local(f"gates_{t + 1}", gates), cont,
                              op.num_output, f"cell_{t + 1}")
            states = [step.local(f"h_{t + 1}", h), c]
            outputs.append(states[0])
        else:
            states = [step.local(f"h_{t + 1}", call("torch.tanh", gates))]
            outputs.append(step.local(f"o_{t + 1}", call("torch.tanh", call(
                "F.linear", states[0], weight("W_ho"), weight("b_o")))))
    # the output, then the final h (and c), exposed
    return TorchForm((call("torch.cat", outputs, 0), *states), _parameters(step))


@form("LSTM")
def lstm(step: Step) -> TorchForm:
    return _recurrent(step, "c")


@form("RNN")
def rnn(step: Step) -> TorchForm:
    return _recurrent(step, "h")



# ----- fork layer types (declared in .arch files; see common.py for what each form assumes) ---

@form("Axpy")
def axpy(step: Step) -> TorchForm:
    # a * x + y, the gate a (N x C or N x C x 1...) broadcast over x's other axes
    channels, rank = axpy_channels(TARGET, step.entry), len(step.entry.inputs[1])
    gate, x, y = step.inputs
    if len(step.entry.inputs[0]) != rank:
        gate = method(gate, "reshape", -1, channels, *(1,) * (rank - 2))
    return TorchForm(Binary("+", Binary("*", gate, x), y))


@form("ConvolutionDepthwise")
def convolution_depthwise(step: Step) -> TorchForm:
    # the fork's per-channel loop is an nn.Conv2d with one group per channel, Caffe's weights
    window = depthwise_window(TARGET, step.entry)
    module = call("nn.Conv2d", window.channels, window.channels, kernel_size=window.kernel,
                  groups=window.channels,
                  **_options(stride=(window.stride, 1), padding=(window.pad, 0),
                             dilation=(window.dilation, 1), bias=(window.bias_term, True)))
    return TorchForm(call(step.module, step.inputs[0]), module)


@form("ShuffleChannel")
def shuffle_channel(step: Step) -> TorchForm:
    group, x = shuffle_groups(TARGET, step.entry), step.inputs[0]
    rows = method(x, "reshape", method(x, "size", 0), group, -1, *step.entry.inputs[0][2:])
    return TorchForm(method(method(rows, "transpose", 1, 2), "reshape", Attribute("shape", x)))


FORMS.update(FORK_REFUSALS)


# ----- the program ---------------------------------------------------------------------------

def identifier(name: str, prefix: str, reserved: frozenset[str], taken: set[str]) -> str:
    """`name` made a fresh ASCII identifier (see the module docstring), added to `taken`."""
    base = re.sub(r"[^0-9A-Za-z_]", "_", name)
    if not base[:1].isalpha():
        base = f"{prefix}_{base.lstrip('_')}"
    if keyword.iskeyword(base) or base in reserved:
        base += "_"
    candidate, number = base, 2
    while candidate in taken:
        candidate, number = f"{base}_{number}", number + 1
    taken.add(candidate)
    return candidate


@dataclass(frozen=True)
class Statement:
    targets: tuple[str, ...]   # forward's variables the value is assigned to
    value: object

    def render(self) -> str:
        return f"{', '.join(self.targets)} = {render(self.value)}"


@dataclass(frozen=True)
class Program:
    """The net in PyTorch: what model.py prints and the torch backend evaluates."""

    inputs: tuple[tuple[str, str], ...]          # (Caffe blob, variable), in the net's order
    modules: tuple[tuple[str, object], ...]      # (attribute, constructor), in the net's order
    statements: tuple[Statement, ...]
    outputs: tuple[tuple[str, str], ...]         # (Caffe blob, variable)
    layers: tuple[tuple[str, str], ...]          # (attribute, Caffe layer) of each module
    tensors: tuple[tuple[str, str, str], ...]    # (state-dict key, Caffe layer, role)
    buffers: tuple[tuple[str, np.ndarray], ...]  # (state-dict key, value): modules' own state


def program(shaped: ShapedNet, outputs: list[str] | None = None) -> Program:
    """The net as a PyTorch program returning `outputs` (default: Caffe's outputs). Raises
    ExportError naming a layer it cannot export."""
    net = shaped.net
    refuse_rewritten_views(TARGET, shaped)
    attributes: set[str] = set()
    variables: set[str] = set()
    variable_of: dict[str, str] = {}
    for blob in [*net.inputs, *(top for layer in net.layers for top in layer.tops)]:
        if blob not in variable_of:
            variable_of[blob] = identifier(blob, "blob", RESERVED_VARIABLES, variables)
    modules, statements, layers, tensors, buffers = [], [], [], [], []
    for entry in shaped.layers:
        layer = entry.layer
        attribute = identifier(layer.name, "layer", MODULE_ATTRIBUTES, attributes)
        shapes = tensor_shapes(entry)
        step = Step(entry, [Variable(variable_of[b]) for b in layer.bottoms], Attribute(attribute),
                    shapes, variables)
        made = form_for(TARGET, FORMS, layer)(step)
        statements += step.prelude
        if made.module is not None:
            modules.append((attribute, made.module))
            layers.append((attribute, layer.name))
        tensors += [(f"{attribute}.{role}", layer.name, role) for role in shapes]
        buffers += [(f"{attribute}.{name}", value) for name, value in made.buffers.items()]
        if layer.tops:  # Silence has none: nothing for forward to compute
            statements.append(Statement(tuple(variable_of[top] for top in layer.tops), made.value))
    return Program(tuple((blob, variable_of[blob]) for blob in net.inputs), tuple(modules),
                   tuple(statements),
                   tuple((blob, variable_of[blob]) for blob in (outputs or caffe_outputs(net))),
                   tuple(layers), tuple(tensors), tuple(buffers))


def state_dict(shaped: ShapedNet, made: Program, parameters: Parameters) -> dict[str, np.ndarray]:
    """The weights under the keys `Net().load_state_dict` expects."""
    layers = {entry.layer.name: entry.layer for entry in shaped.layers}
    weights = {key: named_tensors(layers[layer], parameters[layer])[role]
               for key, layer, role in made.tensors}
    return {**weights, **dict(made.buffers)}


def _namespaces() -> dict[str, object]:
    import torch
    return {"torch": torch, "nn": torch.nn, "F": torch.nn.functional}


def build_module(made: Program):
    """An nn.Module holding the program's modules under model.py's attribute names (so its
    state dict has model.py's keys), built by evaluating their constructors."""
    namespaces = _namespaces()
    module = namespaces["nn"].Module()
    for attribute, constructor in made.modules:
        module.add_module(attribute, evaluate(constructor, {}, module, namespaces))
    return module


def run(made: Program, module, inputs: list) -> dict[str, object]:
    """model.py's forward, evaluated: the output blobs by name, from the inputs in order."""
    namespaces = _namespaces()
    variables = {variable: value for (_, variable), value in zip(made.inputs, inputs)}
    for statement in made.statements:
        value = evaluate(statement.value, variables, module, namespaces)
        variables.update(zip(statement.targets, value if len(statement.targets) > 1 else (value,)))
    return {blob: variables[variable] for blob, variable in made.outputs}


_TEMPLATES = Path(__file__).with_name("templates")


def model_source(made: Program, source: str, shapes: dict[str, tuple[int, ...]]) -> str:
    """model.py: the program as a module defining `Net`, needing only PyTorch; `source` names
    what it was exported from (written as a string literal, like every name from the model)."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES),
                                     undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                     autoescape=False)
    return environment.get_template("model.py.j2").render(
        source=source, program=made, shapes=shapes, render=render)
