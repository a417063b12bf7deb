"""MODEL, as every command takes it, into one `Model`: a deploy prototxt file, or an .arch file
compiled with its `--PARAM VALUE` overrides.

This stage sits between the compiler (dsl, codegen, ir) and the runtime: commands load their model
here, and the runtime is handed the `Model` (or its text and IR) and never compiles anything.
The compiler's libraries (lark, jinja2) load only when an .arch file is compiled or a prototxt is
imported into the IR, so commands that need neither start without them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from archc.errors import ArchError, UsageError
from archc.files import read_regular_file
from archc.ir.net import Net

if TYPE_CHECKING:
    from archc.ir.ops.fork import ForkTypes

#: the fork layer types every prototxt may use without a flag: the model library's declarations
SHIPPED_TYPES = "lib/forks.arch"


@dataclass(frozen=True, eq=False)
class Model:
    """One model: its deploy prototxt text and, on demand, its net in the IR."""

    path: str                   # as given on the command line
    overrides: dict[str, str]   # an .arch file's parameters; empty for a prototxt
    text: str                   # the deploy prototxt
    source: str                 # names the text in messages: the prototxt's path, `<FILE.arch, generated>`
    compiled: Net | None = field(default=None, repr=False)  # the net an .arch file compiled into
    type_files: tuple[str, ...] = ()  # .arch files declaring fork types a prototxt may use

    @cached_property
    def net(self) -> Net:
        """The net in the IR: what an .arch file compiled into, or the prototxt imported. Raises
        ArchError for a prototxt the IR cannot represent (a layer type archc does not model), which
        only Caffe itself can then run (`archc time` does)."""
        if self.compiled is not None:
            return self.compiled
        from archc.codegen.parse import import_net
        return import_net(self.text, self.source, self.types)

    @cached_property
    def types(self) -> ForkTypes:
        """The fork layer types the prototxt may use: the shipped ones, then `type_files`'."""
        return fork_types(self.type_files)

    @property
    def name(self) -> str:
        """The model as a command line names it: `resnext.arch --depth 101`, or the prototxt path."""
        return " ".join([self.path, *(f"--{key} {value}" for key, value in self.overrides.items())])


def is_arch_file(path: str | Path) -> bool:
    return Path(path).suffix == ".arch"


def fork_types(files: tuple[str, ...] = ()) -> ForkTypes:
    """The fork layer types declared in the model library's `lib/forks.arch` and in `files`
    (a later declaration of a name replaces an earlier one)."""
    from importlib.resources import as_file, files as package_files

    from archc import dsl
    with as_file(package_files("archc.archs") / SHIPPED_TYPES) as shipped:
        types = dict(dsl.declared_types(str(shipped)))
    for path in files:
        if not Path(path).is_file():
            raise ArchError(f"no such file: {path} (--types names an .arch file of `layer` "
                            f"declarations)")
        types.update(dsl.declared_types(path))
    return types


def load_model(path: str | Path, overrides: dict[str, str] | None = None,
               pool_dialect: str = "ceil_mode", type_files: tuple[str, ...] = ()) -> Model:
    """MODEL into a `Model`: an .arch file compiled with `overrides` (its pooling rounding spelled
    in `pool_dialect`), or a prototxt file read as it is. Raises ArchError: a missing or unreadable
    file, a compile error; UsageError: overrides given to a prototxt."""
    path, overrides = str(path), dict(overrides or {})
    if is_arch_file(path):
        if not Path(path).is_file():
            raise ArchError(f"no such file: {path}")
        from archc import codegen  # the compiler's libraries load only when something is compiled
        from archc import dsl
        net = dsl.compile_file(path, overrides)
        return Model(path, overrides, codegen.render(net, pool_dialect), f"<{path}, generated>", net)
    if overrides:
        names = " ".join(f"--{name}" for name in overrides)
        raise UsageError(f"{names}: parameters apply only to .arch files, and {path} is a prototxt")
    try:
        text = read_regular_file(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ArchError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    return Model(path, {}, text, path, type_files=tuple(type_files))
