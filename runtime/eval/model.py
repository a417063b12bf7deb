"""The model being evaluated, as the IR sees it: its input, and what it outputs at a crop size."""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

from archc.files import open_regular_file
from archc.ir import Net, ShapedNet
from archc.runtime.backends import reshaped
from archc.runtime.eval.errors import EvalError


def at_input_size(net: Net, size: int) -> ShapedNet:
    """The net with its one 3-channel input set to size x size, shapes inferred; an error for a net
    that cannot take it (Caffe would abort on the reshape)."""
    if len(net.inputs) != 1:
        raise EvalError(f"the net has {len(net.inputs)} inputs ({', '.join(net.inputs)}); "
                        f"evaluation feeds one image input")
    (name, shape), = net.inputs.items()
    if len(shape) != 4 or shape[1] != 3:
        raise EvalError(f"the net's input '{name}' is {'x'.join(map(str, shape))}; evaluation "
                        f"feeds N x 3 x H x W colour images")
    return reshaped(net, size, size)


def declared_crop_size(net: Net) -> int | None:
    """The side of the net's one square N x 3 x S x S input as declared (the size a generated
    net was compiled for), else None."""
    shapes = list(net.inputs.values())
    if len(shapes) == 1 and len(shapes[0]) == 4 and shapes[0][2] == shapes[0][3]:
        return shapes[0][2]
    return None


def classes(shaped: ShapedNet, blob: str) -> int:
    if blob not in shaped.blobs:
        raise EvalError(f"the net has no blob '{blob}' (--blob); its last layer writes "
                        f"'{shaped.layers[-1].layer.tops[0]}'")
    return math.prod(shaped.blobs[blob][1:])


def sha256_of_file(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    try:
        with open_regular_file(path) as (handle, _):
            while block := handle.read(chunk):
                digest.update(block)
    except OSError as error:
        raise EvalError(f"cannot read {path}: {error.strerror or error}") from None
    return digest.hexdigest()


def sha256_of_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def absolute(path: str) -> str:
    return str(Path(path).resolve())
