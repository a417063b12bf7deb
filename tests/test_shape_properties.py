"""The IR's shape rules against independent formulas: windows placed one by one, numpy concat.

Convolution and pooling outputs are counted by placing windows explicitly along each axis (not by
the closed-form expressions in ir/ops.py); concat is checked against numpy.concatenate. The op
configurations come from tests/test_shapes_vs_caffe.py, which checks the same ops against Caffe.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from archc.ir.ops import Concat, Convolution, Eltwise, Pooling, ShapeError
from strategies import convolution, pooling

SIDES = st.integers(1, 40)
PROPERTY = settings(max_examples=300, deadline=None)


def conv_positions(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """Windows that fit the padded axis: start at -pad, step by stride, end inside. When none
    fits, Caffe still counts one that overhangs by less than a stride (C's division truncates)."""
    extent = dilation * (kernel - 1) + 1
    count, start = 0, -pad
    while start + extent <= size + pad:
        count += 1
        start += stride
    if count == 0 and extent - (size + 2 * pad) < stride:
        count = 1
    return count


def pool_positions(size: int, kernel: int, stride: int, pad: int, ceil: bool, padded: bool) -> int:
    """Windows from -pad by stride: floor keeps those inside the padded axis, ceil adds one that
    overhangs its end; Caffe then drops a last window that starts in the bottom/right padding
    (when either axis is padded)."""
    starts = []
    start = -pad
    while start + kernel <= size + pad:
        starts.append(start)
        start += stride
    if ceil and starts[-1] + kernel < size + pad:
        starts.append(start)
    if padded and starts[-1] >= size:
        starts.pop()
    return len(starts)


@st.composite
def conv_cases(draw):
    channels = draw(st.integers(1, 8))
    return (draw(st.integers(1, 2)), channels, draw(SIDES), draw(SIDES)), convolution(draw, channels)


@PROPERTY
@given(conv_cases())
def test_convolution_counts_the_windows_that_fit(case):
    (n, c, h, w), op = case
    out_h = conv_positions(h, op.kernel_h, op.stride_h, op.pad_h, op.dilation)
    out_w = conv_positions(w, op.kernel_w, op.stride_w, op.pad_w, op.dilation)
    if out_h == 0 or out_w == 0:
        with pytest.raises(ShapeError, match="window is larger than the padded"):
            op.output_shape([(n, c, h, w)])
    else:
        assert op.output_shape([(n, c, h, w)]) == (n, op.num_output, out_h, out_w)


@PROPERTY
@given(c=st.integers(1, 12), num_output=st.integers(1, 12), group=st.integers(1, 6))
def test_convolution_group_must_divide_both_channel_counts(c, num_output, group):
    op = Convolution(num_output, 1, 1, group=group)
    if c % group == 0 and num_output % group == 0:
        assert op.output_shape([(1, c, 5, 5)]) == (1, num_output, 5, 5)
        assert op.param_shapes([(1, c, 5, 5)])[0] == (num_output, c // group, 1, 1)
    else:
        with pytest.raises(ShapeError, match="must divide"):
            op.output_shape([(1, c, 5, 5)])


@st.composite
def pool_cases(draw):
    return (draw(st.integers(1, 2)), draw(st.integers(1, 8)), draw(SIDES), draw(SIDES)), pooling(draw)


@PROPERTY
@given(pool_cases())
def test_pooling_counts_window_placements(case):
    (n, c, h, w), op = case
    if op.global_pooling:
        assert op.output_shape([(n, c, h, w)]) == (n, c, 1, 1)
        return
    # Where the kernel exceeds the padded input Caffe's formula has no window meaning.
    assume(op.kernel_h <= h + 2 * op.pad_h and op.kernel_w <= w + 2 * op.pad_w)
    padded = bool(op.pad_h or op.pad_w)
    ceil = op.rounding == "ceil"
    out_h = pool_positions(h, op.kernel_h, op.stride_h, op.pad_h, ceil, padded)
    out_w = pool_positions(w, op.kernel_w, op.stride_w, op.pad_w, ceil, padded)
    # unpadded, a last (ceil) window starting past the input pools nothing: refused
    empty = not padded and ((out_h - 1) * op.stride_h >= h or (out_w - 1) * op.stride_w >= w)
    if empty:
        with pytest.raises(ShapeError, match="the last pooling window would start past the input"):
            op.output_shape([(n, c, h, w)])
    else:
        assert op.output_shape([(n, c, h, w)]) == (n, c, out_h, out_w)


@PROPERTY
@given(kernel=st.integers(1, 5), extra=st.integers(0, 3))
def test_pooling_pad_must_stay_below_the_kernel(kernel, extra):
    with pytest.raises(ShapeError, match="smaller than the kernel"):
        Pooling("MAX", kernel, kernel, pad_h=kernel + extra, pad_w=0).output_shape([(1, 1, 9, 9)])


@st.composite
def concat_cases(draw):
    rank = draw(st.integers(1, 4))
    base = draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank))
    axis = draw(st.integers(-rank, rank - 1))
    shapes = []
    for _ in range(draw(st.integers(1, 4))):
        shape = list(base)
        shape[axis] = draw(st.integers(1, 4))
        if draw(st.integers(0, 7)) == 0:  # now and then, a mismatch on another axis
            other = draw(st.integers(0, rank - 1))
            shape[other] += 0 if other == axis % rank else 1
        shapes.append(tuple(shape))
    return axis, shapes


@PROPERTY
@given(concat_cases())
def test_concat_agrees_with_numpy(case):
    axis, shapes = case
    try:
        expected = np.concatenate([np.zeros(s) for s in shapes], axis=axis).shape
    except ValueError:
        with pytest.raises(ShapeError, match="must agree"):
            Concat(axis).output_shape(shapes)
    else:
        assert Concat(axis).output_shape(shapes) == expected


@PROPERTY
@given(st.lists(st.tuples(*[st.integers(1, 3)] * 4), min_size=2, max_size=4),
       st.sampled_from(["SUM", "PROD", "MAX"]))
def test_eltwise_needs_identical_shapes(shapes, operation):
    op = Eltwise(operation)
    if all(shape == shapes[0] for shape in shapes):
        assert op.output_shape(shapes) == shapes[0]
    else:
        with pytest.raises(ShapeError, match="same shape"):
            op.output_shape(shapes)


@PROPERTY
@given(st.integers(2, 4), st.integers(0, 5))
def test_eltwise_coefficients_one_per_input(inputs, coefficients):
    op = Eltwise("SUM", tuple(1.0 for _ in range(coefficients)))
    shapes = [(1, 2, 3, 3)] * inputs
    if coefficients in (0, inputs):
        assert op.output_shape(shapes) == (1, 2, 3, 3)
    else:
        with pytest.raises(ShapeError, match="one per input"):
            op.output_shape(shapes)
