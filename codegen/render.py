"""IR -> deploy prototxt text through a Jinja2 template, deterministic byte for byte."""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import jinja2

from archc.ir.net import Net

POOL_DIALECTS = ("ceil_mode", "round_mode")


def _scalar(value) -> str:
    """A prototxt scalar: booleans lower-case, enums bare, numbers as Python prints them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):  # the only strings in *_param fields are enum names
        return value
    return repr(value)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between runs: compiling the template costs more than rendering."""
    directory = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "archc" / "jinja"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(directory)) if os.access(directory, os.W_OK) else None


@functools.lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False,
        bytecode_cache=_bytecode_cache())
    environment.filters["scalar"] = _scalar
    # JSON string escaping is valid prototxt string escaping for the names we allow; non-ASCII
    # stays raw UTF-8, since protobuf reads no "\ud83d\ude00" surrogate-pair escapes.
    environment.filters["quoted"] = json.JSONEncoder(ensure_ascii=False).encode
    return environment.get_template("deploy.prototxt.j2")


def render(net: Net, pool_dialect: str = "ceil_mode") -> str:
    """Render `net` as deploy prototxt; `pool_dialect` picks how floor rounding is spelled."""
    if pool_dialect not in POOL_DIALECTS:
        raise ValueError(f"unknown pooling dialect {pool_dialect!r}: use one of {POOL_DIALECTS}")
    layers = [
        {
            "name": layer.name,
            "type": layer.type,
            "bottoms": layer.bottoms,
            "tops": layer.tops,
            "message": layer.op.param_message,
            "fields": layer.op.caffe_fields(pool_dialect),
        }
        for layer in net.layers
    ]
    return _template().render(name=net.name, inputs=net.inputs, layers=layers)
