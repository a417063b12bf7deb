"""Layers that change a blob's shape, not its values: Reshape, Flatten (views of their bottom),
Slice (`slice_layer.cpp`), which cuts one bottom into several tops along an axis, Crop
(`crop_layer.cpp`), which cuts one bottom to the size of another, and Tile (`tile_layer.cpp`),
which repeats it along an axis."""
from __future__ import annotations

from typing import Any

from archc.ir.ops.base import (Op, Param, Primitive, Shape, ShapeError, axis_index, caffe,
                               definition, format_shape, prod, read_field, require, required)


@definition
class Reshape(Op):
    """Gives axes axis .. axis + num_axes - 1 (num_axes -1: to the last) the shape `dims`."""

    caffe_type = "Reshape"
    param_message = "reshape_param"
    views_input = True

    dims: tuple[int, ...] = ()
    axis: int = caffe(0)
    num_axes: int = caffe(-1)

    primitives = (
        Primitive("reshape", (required("dims", "ints", "0 copies an axis, -1 infers one"),
                              Param("axis", "int", 0, doc="the first axis replaced"),
                              Param("num_axes", "int", -1, doc="how many (-1: to the last)")),
                  lambda a: [Reshape(tuple(a["dims"]), a["axis"], a["num_axes"])], "Reshape"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        source = inputs[0]
        # Caffe counts a negative axis from one past the last: -1 appends axes at the end
        start = self.axis if self.axis >= 0 else len(source) + self.axis + 1
        if not 0 <= start <= len(source):
            raise ShapeError(f"reshape axis {self.axis} is out of range for a {len(source)}-D input")
        if self.num_axes < -1:
            raise ShapeError(f"reshape num_axes must be -1 (to the last axis) or at least 0, got "
                             f"{self.num_axes}")
        end = len(source) if self.num_axes == -1 else start + self.num_axes
        if end > len(source):
            raise ShapeError(f"reshape replaces {self.num_axes} axes from axis {self.axis}, past "
                             f"the last axis of its {len(source)}-D input")
        out = []
        for i, dim in enumerate(self.dims):
            if dim == 0:
                if start + i >= len(source):
                    raise ShapeError(f"reshape dim {i} is 0 (copy) but the input has only "
                                     f"{len(source)} axes" + (f", none {start + i}" if start else ""))
                out.append(source[start + i])
            elif dim == -1 or dim > 0:
                out.append(dim)
            else:
                raise ShapeError(f"reshape dims must be positive, 0 (copy) or -1 (infer), got {dim}")
        if out.count(-1) > 1:
            raise ShapeError("reshape may infer (-1) at most one dimension")
        total = prod(source[start:end])
        known = prod(d for d in out if d != -1)
        if -1 in out:
            if total % known:
                raise ShapeError(f"reshape cannot infer a dimension: {total} elements do not divide by {known}")
            out[out.index(-1)] = total // known
        elif known != total:
            raise ShapeError(f"reshape to {format_shape(tuple(out))} changes the element count ({total})")
        return source[:start] + tuple(out) + source[end:]

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        return {"shape": {"dim": list(self.dims)}, **super().caffe_fields(pool_dialect)}

    @classmethod
    def from_caffe(cls, layer: Any, dialect: str) -> Reshape:
        p = layer.reshape_param
        return cls(dims=tuple(p.shape.dim), axis=p.axis, num_axes=p.num_axes)


@definition
class Flatten(Op):
    """Axes axis .. end_axis as one."""

    caffe_type = "Flatten"
    param_message = "flatten_param"
    views_input = True

    axis: int = caffe(1)
    end_axis: int = caffe(-1)

    primitives = (
        Primitive("flatten", (Param("axis", "int", 1), Param("end_axis", "int", -1)),
                  lambda a: [Flatten(a["axis"], a["end_axis"])], "Flatten"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        source = inputs[0]
        start = axis_index(self.axis, source, "flatten")
        end = axis_index(self.end_axis, source, "flatten")
        if end + 1 < start:
            raise ShapeError(f"flatten end_axis {self.end_axis} comes before axis {self.axis}")
        return source[:start] + (prod(source[start:end + 1]),) + source[end + 1:]


@definition
class Slice(Op):
    caffe_type = "Slice"
    param_message = "slice_param"

    axis: int = caffe(1)
    slice_point: tuple[int, ...] = caffe(())

    primitives = (
        Primitive("slice", (required("points", "ints", "where to cut, in increasing order"),
                            Param("axis", "int", 1)),
                  lambda a: [Slice(a["axis"], tuple(a["points"]))],
                  "Slice: cut along an axis into len(points) + 1 tensors"),
    )

    def max_tops(self) -> int | None:
        return None

    def top_count(self, bottoms: int) -> int:
        return len(self.slice_point) + 1

    def is_view(self, bottoms: int, tops: int) -> bool:
        return tops == 1  # Caffe shares the bottom's memory with a lone top

    def infer(self, inputs: list[Shape], tops: int) -> tuple[Shape, ...]:
        source = inputs[0]
        axis = axis_index(self.axis, source, "slice")
        extent = source[axis]
        if self.slice_point:
            if len(self.slice_point) != tops - 1:
                raise ShapeError(f"slice has {len(self.slice_point)} slice points for {tops} tops: "
                                 f"give one point fewer than tops")
            bounds = (0, *self.slice_point, extent)
            sizes = [end - start for start, end in zip(bounds, bounds[1:])]
            if min(sizes) <= 0:
                raise ShapeError(f"slice points {list(self.slice_point)} must increase strictly "
                                 f"and stay inside axis {self.axis} (size {extent})")
        else:
            if extent % tops:
                raise ShapeError(f"slice cannot cut axis {self.axis} (size {extent}) into {tops} "
                                 f"equal parts: give slice points")
            sizes = [extent // tops] * tops
        return tuple(source[:axis] + (size,) + source[axis + 1:] for size in sizes)

    @classmethod
    def from_caffe(cls, layer: Any, dialect: str) -> Slice:
        p = layer.slice_param
        require(not (p.HasField("axis") and p.HasField("slice_dim")),
                "give axis or slice_dim, not both")
        # slice_dim is the deprecated spelling of axis.
        axis = p.slice_dim if p.HasField("slice_dim") else p.axis
        return cls(axis=axis, slice_point=read_field(p, "slice_point"))


@definition
class Crop(Op):
    """The first bottom cut, on every axis from `axis` on, to the second bottom's size, from
    `offset` (one for all those axes, or one per axis; none: 0)."""

    caffe_type = "Crop"
    param_message = "crop_param"
    min_bottoms = 2
    max_bottoms = 2

    axis: int = caffe(2)
    offset: tuple[int, ...] = caffe(())

    primitives = (
        Primitive("crop", (Param("axis", "int", 2, doc="the first axis cut"),
                           Param("offset", "ints", (), doc="one for every axis cut, or one each")),
                  lambda a: [Crop(a["axis"], tuple(a["offset"]))],
                  "Crop: of [data, reference], the data cut to the reference's size from `axis` on",
                  reads="[data, reference]"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        data, reference = inputs
        start = axis_index(self.axis, data, "crop")
        cropped = len(data) - start
        if len(self.offset) > 1 and len(self.offset) != cropped:
            raise ShapeError(f"crop gives {len(self.offset)} offsets for the {cropped} axes from "
                             f"axis {self.axis}: give one for all, or one per axis")
        if min(self.offset, default=0) < 0:
            raise ShapeError(f"crop offsets must be >= 0, got {list(self.offset)}")
        if len(reference) < len(data):
            raise ShapeError(f"crop's second input ({format_shape(reference)}) gives the sizes of "
                             f"the first's axes ({format_shape(data)}): it needs as many axes")
        offsets = self.offsets(len(data))
        out = list(data)
        for index, offset in zip(range(start, len(data)), offsets):
            if offset + reference[index] > data[index]:
                raise ShapeError(f"crop of axis {index} to {reference[index]} from offset {offset} "
                                 f"runs past its size {data[index]}: use a smaller offset or a larger input")
            out[index] = reference[index]
        return tuple(out)

    def offsets(self, rank: int) -> tuple[int, ...]:
        """The offset of each axis cut, from `axis` on: one for all, one each, or none (0)."""
        cropped = rank - axis_index(self.axis, (0,) * rank, "crop")
        return self.offset * cropped if len(self.offset) == 1 else self.offset or (0,) * cropped


@definition
class Tile(Op):
    caffe_type = "Tile"
    param_message = "tile_param"

    tiles: int = caffe()
    axis: int = caffe(1)

    primitives = (
        Primitive("tile", (required("tiles", "int", "copies"), Param("axis", "int", 1)),
                  lambda a: [Tile(a["tiles"], a["axis"])], "Tile, copies along an axis"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        source = inputs[0]
        axis = axis_index(self.axis, source, "tile")
        if self.tiles <= 0:
            raise ShapeError(f"tile tiles must be positive, got {self.tiles}")
        return source[:axis] + (source[axis] * self.tiles,) + source[axis + 1:]
