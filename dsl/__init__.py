"""The .arch language: grammar, parser and elaboration into the IR."""
from __future__ import annotations

from typing import TYPE_CHECKING

from archc.dsl.elaborate import Module, ParamInfo, elaborate
from archc.dsl.loading import Loader, load_module
from archc.ir.net import Net

if TYPE_CHECKING:
    from archc.ir.ops.fork import ForkTypes


def compile_file(path: str, overrides: dict[str, str] | None = None) -> Net:
    """Compile an .arch file with `--name value` overrides into an IR net (raises ArchError)."""
    loader = Loader(path)
    module = load_module(path, overrides or {}, loader)
    return elaborate(module, loader)


def declared_types(path: str) -> ForkTypes:
    """The fork layer types a file declares or imports (`layer NAME(...) { ... }`)."""
    return load_module(path, {}).types


def file_params(path: str) -> list[ParamInfo]:
    """The parameters a file declares, with defaults, allowed values and docs (for --help)."""
    return load_module(path, {}).params


__all__ = ["compile_file", "declared_types", "file_params", "Loader", "Module", "ParamInfo"]
