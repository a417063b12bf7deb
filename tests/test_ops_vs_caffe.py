"""Every op's shape rule and set-up checks against real Caffe, on random parameters and inputs.

For each op a strategy draws parameters, input shapes and a number of tops from ranges that
straddle Caffe's limits. Where the IR accepts a draw, Caffe allocates exactly the blob and
parameter shapes the IR inferred (in this process); where the IR refuses one, Caffe aborts setting
it up or running it forward (in a child process, which is slower: fewer examples).
"""
from __future__ import annotations

import subprocess
import sys
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from archc import codegen
from archc.ir import ArchError, Layer, Net, infer_shapes
from archc.ir.ops import (ELU, BNLL, LRN, MVN, OPS, SPP, AbsVal, ArgMax, BatchNorm, BatchReindex,
                          Bias, Clip, Concat, Convolution, Crop, Deconvolution, Dropout, Eltwise,
                          Embed, Exp, Filter, Flatten, Im2col, InnerProduct, Log, LSTM, LSTMUnit, Op,
                          Parameter, Pooling, Power, PReLU, Reduction, ReLU, Reshape, RNN, Scale,
                          Sigmoid, Silence, Slice, Softmax, Split, Swish, TanH, Threshold, Tile)
from archc.runtime.loader import load_net_text
from archc.runtime.weights import initial_weights
from golden import assert_caffe_allocates_the_inferred_shapes

#: Caffe type -> a function of hypothesis's `draw` and the type giving an op of that type, its
#: input shapes and its number of tops
DRAWS: dict[str, Callable] = {}
Draw = tuple[Op, list[tuple[int, ...]], int]


def draws(*caffe_types: str):
    def register(function):
        for caffe_type in caffe_types:
            DRAWS[caffe_type] = function
        return function
    return register


def shape(draw, least_axes: int = 1, most_axes: int = 5, most: int = 5) -> tuple[int, ...]:
    return tuple(draw(st.lists(st.integers(1, most), min_size=least_axes, max_size=most_axes)))


def number(draw) -> float:
    return draw(st.sampled_from([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0]))


ELEMENTWISE = {
    "ReLU": lambda draw: ReLU(number(draw)),
    "Dropout": lambda draw: Dropout(draw(st.sampled_from([0.0, 0.5, 1.0]))),
    "BatchNorm": lambda draw: BatchNorm(draw(st.booleans())),
    "TanH": lambda draw: TanH(), "Sigmoid": lambda draw: Sigmoid(), "AbsVal": lambda draw: AbsVal(),
    "BNLL": lambda draw: BNLL(), "ELU": lambda draw: ELU(number(draw)),
    "Threshold": lambda draw: Threshold(number(draw)), "Swish": lambda draw: Swish(number(draw)),
    "Power": lambda draw: Power(number(draw), number(draw), number(draw)),
    "Exp": lambda draw: Exp(number(draw), number(draw), number(draw)),
    "Log": lambda draw: Log(number(draw), number(draw), number(draw)),
    "Clip": lambda draw: Clip(number(draw), number(draw)),
    "PReLU": lambda draw: PReLU(draw(st.booleans())),
}


@draws(*ELEMENTWISE)
def elementwise(draw, caffe_type: str) -> Draw:
    return ELEMENTWISE[caffe_type](draw), [shape(draw)], 1


@draws("Scale", "Bias")
def broadcast(draw, caffe_type: str) -> Draw:
    data = shape(draw)
    axis = draw(st.integers(-len(data) - 1, len(data)))
    num_axes = draw(st.integers(-2, 3))
    op = Scale(axis, num_axes, draw(st.booleans())) if caffe_type == "Scale" else Bias(axis, num_axes)
    if draw(st.booleans()):
        return op, [data], 1
    # a second bottom: usually some axes of the first, sometimes not
    start = draw(st.integers(0, len(data) - 1))
    operand = data[start:start + draw(st.integers(1, len(data) - start))]
    if draw(st.integers(0, 4)) == 0:
        operand = operand[:-1] + (operand[-1] + 1,)
    return op, [data, operand], 1


@draws("LRN")
def lrn(draw, caffe_type: str) -> Draw:
    op = LRN(draw(st.integers(0, 6)), number(draw), number(draw),
             draw(st.sampled_from(["ACROSS_CHANNELS", "WITHIN_CHANNEL"])), number(draw))
    return op, [shape(draw, least_axes=3, most_axes=5, most=7)], 1


@draws("MVN")
def mvn(draw, caffe_type: str) -> Draw:
    return MVN(draw(st.booleans()), draw(st.booleans())), [shape(draw, most_axes=6)], 1


@draws("InnerProduct")
def inner_product(draw, caffe_type: str) -> Draw:
    data = shape(draw, most_axes=4)
    op = InnerProduct(draw(st.integers(0, 4)), draw(st.booleans()),
                      draw(st.integers(-len(data) - 1, len(data))), draw(st.booleans()))
    return op, [data], 1


@draws("Embed")
def embed(draw, caffe_type: str) -> Draw:
    op = Embed(draw(st.integers(0, 4)), draw(st.integers(0, 4)), draw(st.booleans()))
    return op, [shape(draw, most_axes=4)], 1


@draws("Convolution", "Deconvolution")
def convolutional(draw, caffe_type: str) -> Draw:
    group = draw(st.integers(1, 3))
    op = {"Convolution": Convolution, "Deconvolution": Deconvolution}[caffe_type](
        draw(st.integers(0, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4)),
        draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(0, 3)),
        draw(st.integers(0, 3)), group, draw(st.integers(1, 2)), draw(st.booleans()))
    return op, [(draw(st.integers(1, 2)), draw(st.integers(1, 4)), *shape(draw, 2, 2, 6))], 1


@draws("Im2col")
def im2col(draw, caffe_type: str) -> Draw:
    op = Im2col(draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3)),
                draw(st.integers(1, 3)), draw(st.integers(0, 3)), draw(st.integers(0, 3)),
                draw(st.integers(1, 2)))
    return op, [shape(draw, 4, 4, 6)], 1


@draws("Pooling")
def pooling(draw, caffe_type: str) -> Draw:
    method = draw(st.sampled_from(["MAX", "AVE", "STOCHASTIC"]))
    if draw(st.integers(0, 4)) == 0:
        op = Pooling(method, global_pooling=True)
    else:
        op = Pooling(method, draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3)),
                     draw(st.integers(1, 3)), draw(st.integers(0, 2)), draw(st.integers(0, 2)),
                     rounding=draw(st.sampled_from(["ceil", "floor"])))
    return op, [shape(draw, 4, 4, 7)], draw(st.integers(1, 2))


@draws("SPP")
def spp(draw, caffe_type: str) -> Draw:
    op = SPP(draw(st.integers(0, 4)), draw(st.sampled_from(["MAX", "AVE", "STOCHASTIC"])))
    return op, [shape(draw, 4, 4, 9)], 1


def axis(draw, rank: int) -> int:
    """An axis of a `rank`-D blob, or one step beyond either end."""
    return draw(st.integers(-rank - 1, rank))


@draws("Reduction")
def reduction(draw, caffe_type: str) -> Draw:
    data = shape(draw)
    op = Reduction(draw(st.sampled_from(["SUM", "ASUM", "SUMSQ", "MEAN"])), axis(draw, len(data)),
                   number(draw))
    return op, [data], 1


@draws("ArgMax")
def argmax(draw, caffe_type: str) -> Draw:
    data = shape(draw)
    op = ArgMax(draw(st.booleans()), draw(st.integers(0, 6)),
                draw(st.none() | st.just(axis(draw, len(data)))))
    return op, [data], 1


@draws("Tile")
def tile(draw, caffe_type: str) -> Draw:
    data = shape(draw)
    return Tile(draw(st.integers(-1, 3)), axis(draw, len(data))), [data], 1


@draws("Crop")
def crop(draw, caffe_type: str) -> Draw:
    data = shape(draw, most=6)
    reference = tuple(draw(st.integers(1, 6)) for _ in range(draw(st.integers(len(data) - 1, len(data) + 1))))
    offsets = draw(st.lists(st.integers(0, 3), max_size=len(data) + 1))
    return Crop(axis(draw, len(data)), tuple(offsets)), [data, reference or (1,)], 1


@draws("Split", "Silence")
def split_or_silence(draw, caffe_type: str) -> Draw:
    if caffe_type == "Split":
        return Split(), [shape(draw)], draw(st.integers(1, 3))
    return Silence(), [shape(draw) for _ in range(draw(st.integers(1, 3)))], 0


@draws("Parameter")
def parameter(draw, caffe_type: str) -> Draw:
    # (a zero dimension Caffe allocates lazily, and runs; the IR refuses it)
    dims = draw(st.lists(st.sampled_from([-1, 1, 2, 3]), max_size=4))
    return Parameter(tuple(dims)), [], 1


@draws("Filter")
def filter_(draw, caffe_type: str) -> Draw:
    data = [shape(draw, most=3) for _ in range(draw(st.integers(1, 2)))]
    selector = (data[0][0], *(draw(st.integers(1, 2)) for _ in range(draw(st.integers(0, 2)))))
    return Filter(), [*data, selector], draw(st.integers(len(data) - 1, len(data)))


@draws("BatchReindex")
def batch_reindex(draw, caffe_type: str) -> Draw:
    return BatchReindex(), [shape(draw), shape(draw, most_axes=2)], 1


def mostly(draw, expected, *others):
    """`expected`, or now and then one of `others`."""
    return draw(st.sampled_from([expected] * 4 + list(others)))


@draws("LSTM", "RNN")
def recurrent(draw, caffe_type: str) -> Draw:
    op = {"LSTM": LSTM, "RNN": RNN}[caffe_type](draw(st.integers(0, 3)), draw(st.booleans()))
    x = shape(draw, 2, 4, 3)
    steps, streams = x[:2]
    inputs = [x, mostly(draw, (steps, streams), (steps, streams + 1), (steps,))]
    if draw(st.booleans()):  # x_static
        inputs.append((mostly(draw, streams, streams + 1), *shape(draw, 0, 2, 3)))
    exposed = len(op.states) if op.expose_hidden else 0
    state = (1, streams, max(op.num_output, 1))
    inputs += [mostly(draw, state, (1, streams, state[2] + 1)) for _ in range(mostly(draw, exposed, 1))]
    return op, inputs, mostly(draw, 1 + exposed, 1, 3)


@draws("LSTMUnit")
def lstm_unit(draw, caffe_type: str) -> Draw:
    streams, hidden = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    inputs = [mostly(draw, (1, streams, hidden), (2, streams, hidden), (streams, hidden)),
              mostly(draw, (1, streams, 4 * hidden), (1, streams, hidden), (1, streams + 1, 4 * hidden)),
              mostly(draw, (1, streams), (1, streams, 1), (2, streams))]
    return LSTMUnit(), inputs, 2


@draws("Softmax")
def softmax(draw, caffe_type: str) -> Draw:
    data = shape(draw)
    return Softmax(axis(draw, len(data))), [data], 1


@draws("Concat", "Eltwise")
def merge(draw, caffe_type: str) -> Draw:
    first = shape(draw, most=3)
    inputs = [first] + [mostly(draw, first, shape(draw, most=3))
                        for _ in range(draw(st.integers(0, 2)))]
    if caffe_type == "Concat":
        inputs = [first[:1] + (draw(st.integers(1, 3)),) + first[2:] for _ in inputs]
        return Concat(axis(draw, len(first))), inputs, 1
    operation = draw(st.sampled_from(["SUM", "PROD", "MAX"]))
    coeff = tuple(number(draw) for _ in range(draw(st.integers(0, 3))))
    return Eltwise(operation, coeff), inputs, 1


@draws("Reshape", "Flatten", "Slice")
def reshaping(draw, caffe_type: str) -> Draw:
    data = shape(draw, most=4)
    if caffe_type == "Reshape":
        dims = tuple(draw(st.lists(st.sampled_from([-2, -1, 0, 1, 2, 3, 4]), max_size=4)))
        return Reshape(dims, axis(draw, len(data)), draw(st.integers(-2, 3))), [data], 1
    if caffe_type == "Flatten":
        return Flatten(axis(draw, len(data)), axis(draw, len(data))), [data], 1
    points = tuple(sorted(draw(st.lists(st.integers(0, 5), max_size=3))))
    return Slice(axis(draw, len(data)), points), [data], draw(st.integers(1, 4))


def net_of(op: Op, inputs: list[tuple[int, ...]], tops: int) -> Net:
    bottoms = tuple(f"in{i}" for i in range(len(inputs)))
    blobs = dict(zip(bottoms, inputs)) or {"unread": (1,)}
    return Net(blobs, [Layer("layer", op, bottoms, tuple(f"out{i}" for i in range(tops)))])


def refusal(net: Net) -> str | None:
    """Why the IR refuses the net; None when it accepts it."""
    try:
        infer_shapes(net)
    except ArchError as error:
        return error.message
    return None


def accepted(net: Net) -> bool:
    return refusal(net) is None


def stricter_than_caffe(net: Net, why: str) -> bool:
    """Whether the IR refuses on purpose what Caffe's (release) build runs: a last pooling window
    that pools nothing (and corrupts memory going backward), a dropout ratio of 1 (only a debug
    build checks it), one coefficient per input of an elementwise MAX (which Caffe ignores)."""
    [layer] = net.layers
    ignored_coefficients = (isinstance(layer.op, Eltwise) and layer.op.operation == "MAX"
                            and len(layer.op.coeff) == len(layer.bottoms))
    return ignored_coefficients or any(reason in why for reason in (
        "the last pooling window would start past the input", "dropout ratio must be in [0, 1)"))


@st.composite
def nets(draw, caffe_type: str) -> Net:
    return net_of(*DRAWS[caffe_type](draw, caffe_type))


def test_every_op_is_drawn():
    assert set(DRAWS) == set(OPS)


@pytest.mark.parametrize("caffe_type", sorted(DRAWS))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_what_the_ir_accepts_caffe_allocates_as_inferred(caffe, caffe_type, data):
    net = data.draw(nets(caffe_type))
    assume(accepted(net))
    assert_caffe_allocates_the_inferred_shapes(net, codegen.render(net))


# A fixed program: read prototxt paths, one a line; set up and run each net forward in a forked
# child (cheaper than a process per net), its log in a file beside it; answer whether it survived.
_RUNNER = """import os, sys
from archc.runtime.caffe_env import import_caffe
caffe = import_caffe()
for line in sys.stdin:
    path = line.rstrip('\\n')
    child = os.fork()
    if child == 0:
        os.dup2(os.open(path + '.log', os.O_WRONLY | os.O_CREAT), 2)
        caffe.Net(path, caffe.TEST).forward()
        os._exit(0)
    print(int(os.waitpid(child, 0)[1] == 0), flush=True)
"""


@pytest.fixture(scope="module")
def caffe_runs(caffe, tmp_path_factory):
    """Whether Caffe sets a net up and runs it forward, asked of a child process (a refusal is
    an abort)."""
    directory = tmp_path_factory.mktemp("refused")
    runner = subprocess.Popen([sys.executable, "-c", _RUNNER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)

    def runs(net: Net) -> bool:
        path = directory / f"net{len(list(directory.glob('*.prototxt')))}.prototxt"
        path.write_text(codegen.render(net))
        runner.stdin.write(f"{path}\n")
        runner.stdin.flush()
        answer = runner.stdout.readline().strip()
        assert answer in ("0", "1"), f"the Caffe runner stopped: {answer!r}"
        return answer == "1"
    yield runs
    runner.stdin.close()
    runner.wait()


@pytest.mark.parametrize("caffe_type", sorted(DRAWS))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_what_the_ir_refuses_caffe_aborts_on(caffe_runs, caffe_type, data):
    net = data.draw(nets(caffe_type))
    why = refusal(net)
    if why is not None and not stricter_than_caffe(net, why):
        assert not caffe_runs(net), f"Caffe runs what the IR refuses ({why}):\n{codegen.render(net)}"


@pytest.mark.parametrize("shared", [False, True])
def test_weights_init_fills_prelu_slopes_as_caffe_does(caffe, shared):
    net = net_of(PReLU(shared), [(2, 3, 4)], 1)
    [(_, _, [slopes])] = initial_weights(infer_shapes(net))
    caffes = load_net_text(codegen.render(net)).net.params["layer"][0].data
    np.testing.assert_array_equal(slopes, caffes)
