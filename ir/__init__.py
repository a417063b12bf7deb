"""The intermediate representation: typed layers, blobs and Caffe's shape rules."""
from archc.errors import ArchError, Span
from archc.ir.net import (BLOCK_CALL, LOOP_ITERATION, CallFrame, Layer, LayerShapes, Net, ShapedNet,
                          ShapeTracker, infer_shapes)
from archc.ir.ops import OPS, Op, Shape, ShapeError

__all__ = ["ArchError", "Span", "BLOCK_CALL", "LOOP_ITERATION", "CallFrame", "Layer", "LayerShapes",
           "Net", "ShapedNet", "ShapeTracker", "infer_shapes", "OPS", "Op", "Shape", "ShapeError"]
