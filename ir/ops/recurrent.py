"""Recurrent layers: LSTM (`lstm_layer.cpp`) and RNN (`rnn_layer.cpp`), which Caffe runs as a
net unrolled over the time steps (`recurrent_layer.cpp`), and LSTMUnit (`lstm_unit_layer.cpp`),
one step of an LSTM.

A recurrent layer reads x, T x N x ... (T time steps of N independent streams), and cont, T x N
(0 where a stream starts a new sequence), optionally a static input x_static, N x ..., added at
every step, and with expose_hidden the initial hidden state(s); it writes its output, T x N x
num_output, and with expose_hidden the final hidden state(s), each 1 x N x num_output.
"""
from __future__ import annotations

from typing import Callable, ClassVar

from archc.ir.ops.base import (INT_MAX, Op, Param, ParamBlob, Primitive, Shape, ShapeError, caffe,
                               definition, format_shape, prod, required)


def _recurrent_primitive(caffe_type: str, states: str,
                         make: Callable[[int, bool], Op]) -> Primitive:
    """The DSL spelling of LSTM or RNN (`make`: the op from num_output and expose_hidden)."""
    return Primitive(
        caffe_type.lower(), (required("num_output", "int", "the hidden state's size"),
                             Param("expose_hidden", "bool", False,
                                   doc=f"read the initial {states} after the inputs, and write "
                                       f"the final ones after the output")),
        lambda a: [make(a["num_output"], a["expose_hidden"])],
        f"{caffe_type} over the time steps of [x, cont] (x T x N x ..., cont T x N), or of "
        f"[x, cont, x_static] with a static input, N x ..., seen at every step", reads="[x, cont]")


@definition
class _Recurrent(Op):
    """What LSTM and RNN share: their inputs, outputs and checks (Caffe's RecurrentLayer)."""

    param_message = "recurrent_param"
    min_bottoms = 2
    max_bottoms = None  # the count `infer` allows depends on expose_hidden
    #: the recurrent states carried from step to step (h, and for LSTM the cell c)
    states: ClassVar[tuple[str, ...]] = ()
    #: rows of the transforms of x and of h into the step's gate inputs, per num_output
    gates: ClassVar[int] = 1

    num_output: int = caffe(0)
    expose_hidden: bool = caffe(False)

    def _exposed(self) -> int:
        return len(self.states) if self.expose_hidden else 0

    def max_tops(self) -> int | None:
        return 1 + self._exposed()

    def top_count(self, bottoms: int) -> int:
        return self.max_tops()

    def _static_input(self, inputs: list[Shape]) -> Shape | None:
        return inputs[2] if len(inputs) == 3 + self._exposed() else None

    def infer(self, inputs: list[Shape], tops: int) -> tuple[Shape, ...]:
        name, exposed = self.caffe_type.lower(), self._exposed()
        order = ", ".join(["x", "cont", "[x_static]", *(f"{state}_0" for state in self.states[:exposed])])
        if len(inputs) not in (2 + exposed, 3 + exposed):
            raise ShapeError(f"{name} reads {order}: {2 + exposed} or {3 + exposed} inputs, got "
                             f"{len(inputs)}")
        if tops != 1 + exposed:
            raise ShapeError(f"{name} writes its output" + (
                f" and the final {', '.join(self.states)}" if exposed else "") + f": {1 + exposed} "
                f"top(s), not {tops}")
        if self.num_output <= 0:
            raise ShapeError(f"{name} num_output must be positive, got {self.num_output}")
        x, cont = inputs[0], inputs[1]
        if len(x) < 3:
            raise ShapeError(f"{name} input x ({format_shape(x)}) must be T x N x ... with at least "
                             f"3 axes: its transform runs over the axes from 2")
        steps, streams = x[0], x[1]
        if cont != (steps, streams):
            raise ShapeError(f"{name} input cont ({format_shape(cont)}) must be T x N, "
                             f"{steps} x {streams}, as x is")
        static = self._static_input(inputs)
        if static is not None and (len(static) < 2 or static[0] != streams):
            raise ShapeError(f"{name} input x_static ({format_shape(static)}) must be N x ... with "
                             f"at least 2 axes, N = {streams}")
        state = (1, streams, self.num_output)
        for given, state_name in zip(inputs[len(inputs) - exposed:], self.states):
            if given != state:
                raise ShapeError(f"{name} input {state_name}_0 ({format_shape(given)}) must be "
                                 f"{format_shape(state)}")
        if steps * streams * self.gates * self.num_output > INT_MAX:
            raise ShapeError(f"{name}'s gate inputs for all steps exceed the {INT_MAX} values a "
                             f"Caffe blob holds: use fewer steps, streams or outputs")
        return ((steps, streams, self.num_output),) + (state,) * exposed

    def _transforms(self, inputs: list[Shape]) -> tuple[ParamBlob, ...]:
        """The weights and bias taking x (and x_static) to the gate inputs, as Caffe orders them."""
        rows = self.gates * self.num_output
        blobs = (ParamBlob((rows, prod(inputs[0][2:])), "he_normal"), ParamBlob((rows,), "zeros"))
        static = self._static_input(inputs)
        if static is not None:
            blobs += (ParamBlob((rows, prod(static[1:])), "he_normal"),)
        return blobs + (ParamBlob((rows, self.num_output), "he_normal"),)

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        """Per time step (axis 0): each weight matrix times its input, x_static's once per sequence."""
        steps, streams = inputs[0][:2]
        matrices = sum(prod(blob.shape) for blob in self.param_blobs(inputs) if len(blob.shape) == 2)
        static = self._static_input(inputs)
        once = 0 if static is None else self.gates * self.num_output * prod(static[1:])
        return streams * (matrices - once) + streams * once // steps


@definition
class LSTM(_Recurrent):
    """Long short-term memory: gates i, f, o and input g from x_t, h_(t-1) (and x_static)."""

    caffe_type = "LSTM"
    states = ("h", "c")
    gates = 4
    primitives = (_recurrent_primitive("LSTM", "h and c", lambda *a: LSTM(*a)),)

    def param_blobs(self, inputs: list[Shape]) -> tuple[ParamBlob, ...]:
        return self._transforms(inputs)  # W_xc, b_c, [W_xc_static], W_hc


@definition
class RNN(_Recurrent):
    """A plain recurrent net: h_t = tanh(W_hh h_(t-1) + W_xh x_t + b_h), o_t = tanh(W_ho h_t + b_o)."""

    caffe_type = "RNN"
    states = ("h",)
    primitives = (_recurrent_primitive("RNN", "h", lambda *a: RNN(*a)),)

    def param_blobs(self, inputs: list[Shape]) -> tuple[ParamBlob, ...]:
        # W_xh, b_h, [W_xh_static], W_hh, then the output's W_ho and b_o
        return self._transforms(inputs) + (ParamBlob((self.num_output, self.num_output), "he_normal"),
                                           ParamBlob((self.num_output,), "zeros"))


@definition
class LSTMUnit(Op):
    """One LSTM step: from c_(t-1) (1 x N x H), the gate inputs (1 x N x 4H) and cont (1 x N),
    the new cell c_t and hidden state h_t."""

    caffe_type = "LSTMUnit"
    min_bottoms = 3
    max_bottoms = 3
    min_tops = 2

    primitives = (
        Primitive("lstm_unit", (), lambda a: [LSTMUnit()],
                  "LSTMUnit, one LSTM step: of [c_prev, gate_input, cont], [c, h]",
                  reads="[c_prev, gate_input, cont]"),
    )

    def max_tops(self) -> int | None:
        return 2

    def top_count(self, bottoms: int) -> int:
        return 2

    def output_shape(self, inputs: list[Shape]) -> Shape:
        cell, gates, cont = inputs
        streams = cell[1] if len(cell) > 1 else None
        if ([len(shape) for shape in inputs] != [3, 3, 2] or gates[2] != 4 * cell[2]
                or any(shape[:2] != (1, streams) for shape in inputs)):
            raise ShapeError(f"lstm unit reads c_prev (1 x N x H), the gate input (1 x N x 4H) and "
                             f"cont (1 x N), got {', '.join(format_shape(s) for s in inputs)}")
        return cell

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return 3 * prod(output[1:])  # f * c, i * g and o * tanh(c)
