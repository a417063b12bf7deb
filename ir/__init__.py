"""The intermediate representation: typed layers, blobs and Caffe's shape rules."""
from archc.errors import ArchError, Span
from archc.ir.net import Layer, LayerShapes, Net, ShapedNet, ShapeTracker, infer_shapes
from archc.ir.ops import OPS, Op, Shape, ShapeError

__all__ = ["ArchError", "Span", "Layer", "LayerShapes", "Net", "ShapedNet", "ShapeTracker", "infer_shapes",
           "OPS", "Op", "Shape", "ShapeError"]
