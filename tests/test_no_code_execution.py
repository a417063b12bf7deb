"""The compiler treats .arch files and prototxts as data (issue 5, section 4).

Nothing in the compiler's packages (nor the exporter, which writes Python) can hand text to
Python or a shell, and an import can only read files inside the directory it was found in (the
model's, the shipped library's or an ARCHC_PATH directory), symlinks included.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from archc import dsl
from archc.errors import ArchError

REPO = Path(__file__).resolve().parent.parent
COMPILER_PACKAGES = ("dsl", "ir", "codegen", "export")
# Python's builtins that run text, called by bare name (`self.eval` and `re.compile` are fine),
# and the library functions that start a shell or load modules by name.
FORBIDDEN_BUILTINS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_METHODS = {"system", "popen", "spawnl", "execv", "import_module"}
FORBIDDEN_MODULES = {"subprocess", "pickle", "marshal", "shelve", "ctypes", "importlib", "runpy"}
# Finds the shipped model library's directory; loads no code by name.
ALLOWED_SUBMODULES = {"importlib.resources"}


def _compiler_sources() -> list[Path]:
    return sorted(p for package in COMPILER_PACKAGES for p in (REPO / package).rglob("*.py"))


@pytest.mark.parametrize("path", _compiler_sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_compiler_code_cannot_execute_text(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function = node.func
            if isinstance(function, ast.Name):
                assert function.id not in FORBIDDEN_BUILTINS, f"{path}:{node.lineno} calls {function.id}()"
            elif isinstance(function, ast.Attribute):
                assert function.attr not in FORBIDDEN_METHODS, f"{path}:{node.lineno} calls .{function.attr}()"
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                assert module in ALLOWED_SUBMODULES or module.split(".")[0] not in FORBIDDEN_MODULES, \
                    f"{path}:{node.lineno} imports {module}"


def test_python_in_names_stays_text(tmp_path: Path):
    marker = tmp_path / "pwned"
    model = tmp_path / "model.arch"
    model.write_text(f'net {{\n  input "data" [1, 3, 8, 8]\n'
                     f'  relu as "__import__(\'os\').system(\'touch {marker}\')"\n}}\n')
    net = dsl.compile_file(str(model), {})
    assert net.layers[0].name.startswith("__import__(")
    assert not marker.exists()


def test_an_import_through_a_symlink_out_of_the_model_directory_is_refused(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.arch").write_text("block leak() {\n  relu\n}\n")
    models = tmp_path / "models"
    models.mkdir()
    (models / "lib").symlink_to(outside, target_is_directory=True)
    model = models / "model.arch"
    model.write_text('import "lib/secret.arch"\nnet {\n  input "data" [1, 3, 8, 8]\n  leak\n}\n')
    with pytest.raises(ArchError, match="leaves the model's directory") as caught:
        dsl.compile_file(str(model), {})
    assert (caught.value.span.line, caught.value.span.column) == (1, 8)
