"""IR -> Caffe prototxt."""
from archc.codegen.render import POOL_DIALECTS, render

__all__ = ["POOL_DIALECTS", "render"]
