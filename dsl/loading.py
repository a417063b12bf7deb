"""Loading .arch files: the model the user names, and the libraries its `import`s name.

An import names a relative path ending in .arch, looked up in order in
1. the importing file's own directory,
2. the model library shipped with archc (the `archc.archs` package: `lib/common.arch`, ...),
3. the directories listed in the ARCHC_PATH environment variable (separated like PATH).
The first that holds the file wins, so a model's own `lib/common.arch` shadows the shipped one.
A file stays inside the root it was found in, symbolic links resolved: the model's directory
(for the model and the files found beside it), the shipped library, or its ARCHC_PATH directory.
No `..` and no link leads out of it. Each file is read, parsed and declared once per compile.
"""
from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from archc.dsl import parser
from archc.dsl.elaborate import Elaborator, Module
from archc.errors import ArchError, Span, UsageError
from archc.files import FileTooLarge, read_regular_file

# Far above any real model (the library's largest is under 8 KiB) and below what takes the parser
# a second (it reads about 100,000 tokens a second here): larger files are refused unread.
MAX_SOURCE_BYTES = 1 << 17
SEARCH_PATH_VARIABLE = "ARCHC_PATH"


@dataclass(frozen=True)
class Root:
    """A directory that imports resolved in it cannot leave, and how messages name it."""

    directory: Path
    description: str


class Loader:
    """Loads the model the user named and the libraries it imports, each file once."""

    def __init__(self, model: str):
        model_path = Path(model).resolve()
        # The root each loaded file was found in: its own imports stay inside that root.
        self.roots: dict[Path, Root] = {model_path: Root(model_path.parent, "the model's directory")}
        self.modules: dict[Path, Module] = {}
        self.loading: set[Path] = set()

    @functools.cached_property
    def library_roots(self) -> list[Root]:
        """Where imports not beside their importer are looked up. Found on first use: most models
        import only files beside them, and importlib.resources costs a compile about 3 ms."""
        import importlib.resources

        return [Root(Path(importlib.resources.files("archc.archs")).resolve(), "archc's model library"),
                *(Root(Path(entry).resolve(), f"the {SEARCH_PATH_VARIABLE} directory")
                  for entry in os.environ.get(SEARCH_PATH_VARIABLE, "").split(os.pathsep) if entry)]

    def read(self, path: str, span: Span | None = None) -> str:
        """A file's text; `span` is where it was named (an import), for errors."""
        try:
            data = read_regular_file(path, MAX_SOURCE_BYTES)
        except FileTooLarge:
            raise ArchError(f"{path} is larger than {MAX_SOURCE_BYTES // 1024} KiB, the limit for an "
                            f".arch file (the model library's largest is under 8 KiB): is it the "
                            f"right file?", span) from None
        except OSError as error:
            raise ArchError(f"cannot read {path}: {error.strerror or error}", span) from None
        try:
            source = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ArchError("the file is not UTF-8 text: invalid byte "
                            f"0x{data[error.start]:02x}", _byte_span(path, data, error.start)) from None
        return source

    def resolve_import(self, target: str, importer: str, span: Span) -> Path:
        """The file an `import "target"` in the file `importer` names (see the module docstring)."""
        if not target.endswith(".arch"):
            raise ArchError(f"import '{target}': library files end in .arch", span)
        importer_path = Path(importer).resolve()
        for directory, root in self._search_path(importer_path):
            candidate = (directory / target).resolve()
            if not candidate.is_relative_to(root.directory):
                raise ArchError(f"import '{target}' leaves {root.description} ({root.directory}): "
                                f"an import is a relative path that stays inside the directory it "
                                f"is found in, with no '..' or symbolic link out of it", span)
            if candidate.is_file():
                self.roots.setdefault(candidate, root)
                return candidate
        places = ", ".join(str(directory) for directory, _ in self._search_path(importer_path))
        raise ArchError(f"import '{target}': no such file in {places}: check the path, or add "
                        f"the directory holding it to {SEARCH_PATH_VARIABLE}", span)

    def _search_path(self, importer: Path) -> Iterator[tuple[Path, Root]]:
        """The directories an import in `importer` is looked up in, in order, each with its root."""
        yield importer.parent, self.roots[importer]
        for root in self.library_roots:
            yield root.directory, root

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
    loader = loader or Loader(path)
    tree = parser.parse(loader.read(path), path)
    elaborator = Elaborator(loader)
    try:
        module = elaborator.declare(tree, path, overrides, top_level=True)
    except RecursionError:
        raise elaborator.too_deep() from None
    unknown = sorted(set(overrides) - {p.name for p in module.params})
    if unknown:  # a mistake on the command line, not in the file: no place in it to show
        names = [p.name for p in module.params]
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f"did you mean --{close[0]}?" if close else \
            f"its parameters are {', '.join('--' + n for n in names) or 'none'}"
        raise UsageError(f"--{unknown[0]} is not a parameter of {path}; {hint}")
    return module


def _byte_span(path: str, data: bytes, offset: int) -> Span:
    """The line and column (in characters) of byte `offset` of a file."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return Span(path, data.count(b"\n", 0, offset) + 1, column)
