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
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np

from archc.export.common import (NOT_YET_EXPORTED, ExportError, Parameters, Refusal,
                                 aligned_operand, caffe_arithmetic, caffe_outputs, form_for,
                                 named_tensors, normalised_axis, pool_axes, refuse_rewritten_views,
                                 refused, registrar, tensor_shapes)
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
    """One layer being written: its shapes, its inputs' variables, its module attribute, and
    its tensors' roles and shapes."""

    entry: LayerShapes
    inputs: list[Variable]
    module: Attribute
    tensors: dict[str, tuple[int, ...]]

    @property
    def op(self):
        return self.entry.layer.op

    @property
    def rank(self) -> int:
        return len(self.entry.inputs[0])

    def refuse(self, reason: str) -> ExportError:
        return refused(TARGET, self.entry.layer, reason)


#: Caffe type -> its PyTorch form (a function of a Step giving a TorchForm), or why it has none
FORMS: dict[str, Callable[[Step], TorchForm] | Refusal] = dict(NOT_YET_EXPORTED)

form = registrar(FORMS)


def _side(height: int, width: int) -> int | tuple[int, int]:
    return height if height == width else (height, width)


def _options(**values) -> dict:
    """Keyword arguments without those at PyTorch's defaults (given as (value, default))."""
    return {key: value for key, (value, default) in values.items() if value != default}


@form("Convolution")
def convolution(step: Step) -> TorchForm:
    op = step.op
    module = call("nn.Conv2d", step.entry.inputs[0][1], op.num_output,
                  kernel_size=_side(op.kernel_h, op.kernel_w),
                  **_options(stride=(_side(op.stride_h, op.stride_w), 1),
                             padding=(_side(op.pad_h, op.pad_w), 0),
                             dilation=(op.dilation, 1), groups=(op.group, 1),
                             bias=(op.bias_term, True)))
    return TorchForm(call(step.module, step.inputs[0]), module)


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
                    shapes)
        made = form_for(TARGET, FORMS, layer)(step)
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
