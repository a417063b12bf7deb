"""The intermediate representation: typed layers, blobs and Caffe's shape rules."""
from ir.diagnostics import ArchError, Span
from ir.net import Layer, LayerShapes, Net, ShapedNet, ShapeTracker, infer_shapes
from ir.ops import OPS, Op, Shape, ShapeError

__all__ = ["ArchError", "Span", "Layer", "LayerShapes", "Net", "ShapedNet", "ShapeTracker", "infer_shapes",
           "OPS", "Op", "Shape", "ShapeError"]
