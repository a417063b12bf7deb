"""Hypothesis building blocks shared by the shape tests (against formulas and against Caffe)."""
from __future__ import annotations

from hypothesis import strategies as st

from archc.ir.ops import Convolution, Pooling


def convolution(draw, channels: int) -> Convolution:
    """A random valid convolution for an input with `channels` channels (`draw` is hypothesis's)."""
    group = draw(st.sampled_from([g for g in (1, 2, 4) if channels % g == 0]))
    return Convolution(
        num_output=group * draw(st.integers(1, 4)),
        kernel_h=draw(st.integers(1, 5)), kernel_w=draw(st.integers(1, 5)),
        stride_h=draw(st.integers(1, 3)), stride_w=draw(st.integers(1, 3)),
        pad_h=draw(st.integers(0, 2)), pad_w=draw(st.integers(0, 2)),
        group=group, dilation=draw(st.integers(1, 2)), bias_term=draw(st.booleans()))


def pooling(draw) -> Pooling:
    """A random pooling: MAX or AVE, sometimes global, pads smaller than the kernel."""
    method = draw(st.sampled_from(["MAX", "AVE"]))
    if draw(st.integers(0, 5)) == 0:
        return Pooling(method=method, global_pooling=True)
    kernel_h, kernel_w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return Pooling(method=method, kernel_h=kernel_h, kernel_w=kernel_w,
                   stride_h=draw(st.integers(1, 3)), stride_w=draw(st.integers(1, 3)),
                   pad_h=draw(st.integers(0, kernel_h - 1)), pad_w=draw(st.integers(0, kernel_w - 1)),
                   rounding=draw(st.sampled_from(["ceil", "floor"])))
