"""The IR's shape inference against real Caffe: random nets, every blob and parameter shape.

Nets are random chains of convolutions, poolings (ceil and floor, padding, rectangular kernels,
global), concatenations and elementwise merges of parallel branches. Only nets the IR accepts are
given to Caffe (through the runtime loader, which would itself refuse the others), since Caffe
aborts the process on invalid configurations.
"""
from __future__ import annotations

import dataclasses
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from archc import codegen
from archc import dsl
from conftest import REPO
from golden import assert_caffe_allocates_the_inferred_shapes
from archc.ir import ArchError, Layer, Net, infer_shapes
from archc.ir.ops import Concat, Eltwise, ReLU
from strategies import convolution, pooling


@st.composite
def random_nets(draw) -> Net:
    channels = draw(st.integers(1, 6))
    net = Net({"data": (draw(st.integers(1, 2)), channels,
                        draw(st.integers(1, 24)), draw(st.integers(1, 24)))}, name="random")
    blob = "data"
    for step in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "pool", "concat", "eltwise"]))
        name = f"s{step}"
        if kind == "conv":
            op = convolution(draw, channels)
            net.layers.append(Layer(name, op, (blob,), (name,)))
            net.layers.append(Layer(f"{name}_relu", ReLU(), (name,), (name,)))
            channels = op.num_output
        elif kind == "pool":
            net.layers.append(Layer(name, pooling(draw), (blob,), (name,)))
        else:
            # Two branches with the same geometry: concat may differ in channels, eltwise may not.
            first = convolution(draw, channels)
            widths = (first.num_output, first.num_output)
            if kind == "concat":
                widths = (first.num_output, first.group * draw(st.integers(1, 4)))
            for index, width in enumerate(widths):
                branch = dataclasses.replace(first, num_output=width)
                net.layers.append(Layer(f"{name}_b{index}", branch, (blob,), (f"{name}_b{index}",)))
            bottoms = (f"{name}_b0", f"{name}_b1")
            if kind == "concat":
                merge = Concat()
            else:
                operation = draw(st.sampled_from(["SUM", "PROD", "MAX"]))
                coeff = draw(st.sampled_from([(), (1.0, -0.5)])) if operation == "SUM" else ()
                merge = Eltwise(operation=operation, coeff=coeff)
            net.layers.append(Layer(name, merge, bottoms, (name,)))
            channels = sum(widths) if kind == "concat" else widths[0]
        blob = name
    return net


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_nets())
def test_inferred_shapes_equal_caffe_blob_shapes(caffe, net):
    try:
        infer_shapes(net)
    except ArchError:
        assume(False)
    assert_caffe_allocates_the_inferred_shapes(net, codegen.render(net))


def test_generated_resnext50_has_the_blobs_and_parameters_caffe_allocates(caffe):
    net = dsl.compile_file(str(REPO / "archs" / "resnext.arch"), {"depth": "50", "card": "32"})
    caffe_net = assert_caffe_allocates_the_inferred_shapes(net, codegen.render(net))
    assert caffe_net.blobs["pool1"].data.shape == (1, 64, 56, 56)   # floor rounding survived

