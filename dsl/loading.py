"""Loading .arch files: the model the user names, and the libraries its `import`s name.

Each file is read, parsed and declared once per compile; an import is resolved to a file,
confined to the directories of the files the user named.
"""
from __future__ import annotations

import difflib
from pathlib import Path

from archc.dsl import parser
from archc.dsl.elaborate import Elaborator, Module
from archc.errors import ArchError, Span


class Loader:
    """Reads files for `import`, confined to the directories of the files the user named."""

    def __init__(self, roots: list[Path]):
        self.roots = [root.resolve() for root in roots]
        self.modules: dict[Path, Module] = {}
        self.loading: set[Path] = set()

    def read(self, path: str, span: Span | None = None) -> str:
        """A file's text; `span` is where it was named (an import), for errors."""
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise ArchError(f"cannot read {path}: {error.strerror or error}", span) from None
        try:
            source = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ArchError("the file is not UTF-8 text: invalid byte "
                            f"0x{data[error.start]:02x}", _byte_span(path, data, error.start)) from None
        return source

    def resolve_import(self, target: str, importer: str, span: Span) -> Path:
        if not target.endswith(".arch"):
            raise ArchError(f"import '{target}': library files end in .arch", span)
        candidate = (Path(importer).parent / target).resolve()
        if not any(candidate == root or root in candidate.parents for root in self.roots):
            raise ArchError(f"import '{target}' leaves the model library "
                            f"({', '.join(map(str, self.roots))}): imports are relative paths "
                            f"inside it", span)
        if not candidate.is_file():
            raise ArchError(f"import '{target}': no such file {candidate}", span)
        return candidate

    def load_library(self, target: str, importer: str, span: Span) -> Module:
        """The declared library `target` imported by the file `importer`; `span` is the import's."""
        resolved = self.resolve_import(target, importer, span)
        if resolved in self.loading:
            raise ArchError(f"import '{target}' is circular", span)
        library = self.modules.get(resolved)
        if library is None:
            self.loading.add(resolved)
            try:
                library_path = str(resolved)
                tree = parser.parse(self.read(library_path, span), library_path)
                library = Elaborator(self).declare(tree, library_path, {}, top_level=False)
            finally:
                self.loading.discard(resolved)
            self.modules[resolved] = library
        return library


def load_module(path: str, overrides: dict[str, str], loader: Loader | None = None) -> Module:
    """Evaluate a top-level .arch file's declarations with the user's parameter overrides."""
    loader = loader or Loader([Path(path).resolve().parent])
    tree = parser.parse(loader.read(path), path)
    elaborator = Elaborator(loader)
    try:
        module = elaborator.declare(tree, path, overrides, top_level=True)
    except RecursionError:
        raise elaborator.too_deep() from None
    unknown = sorted(set(overrides) - {p.name for p in module.params})
    if unknown:
        names = [p.name for p in module.params]
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f"did you mean --{close[0]}?" if close else \
            f"its parameters: {', '.join('--' + n for n in names) or 'none'}"
        raise ArchError(f"{path} has no parameter --{unknown[0]}: {hint}", Span(path, 1, 1))
    return module


def _byte_span(path: str, data: bytes, offset: int) -> Span:
    """The line and column (in characters) of byte `offset` of a file."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return Span(path, data.count(b"\n", 0, offset) + 1, column)
