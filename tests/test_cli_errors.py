"""How the command line ends: one handler turns every error into a message and an exit status."""
from __future__ import annotations

import subprocess
import sys

import pytest

from archc.cli.arguments import split_overrides
from archc.cli.main import main, reports_errors
from archc.errors import ArchError, Span, UsageError
from archc.runtime.caffe_env import CaffeError
from archc.runtime.eval.errors import EvalError
from archc.runtime.weights import WeightsError
from conftest import REPO

NET = 'param size_x: int = 8\nnet { input "data" [1, 3, size_x, size_x]  relu as "r" }\n'


def ending_with(error: BaseException):
    @reports_errors
    def command(argv: list[str]) -> int:
        raise error
    return command


@pytest.mark.parametrize("error", [UsageError("u"), EvalError("e"), CaffeError("c"),
                                   WeightsError("w"), ArchError("a")])
def test_every_user_facing_error_is_an_arch_error_and_exits_2(capsys, error):
    assert isinstance(error, ArchError)
    assert ending_with(error)([]) == 2
    assert capsys.readouterr().err == f"archc: error: {error}\n"


def test_an_error_with_a_place_shows_it(tmp_path, capsys):
    source = tmp_path / "m.arch"
    source.write_text("net {\n  oops\n}\n")
    assert ending_with(ArchError("what", Span(str(source), 2, 3)))([]) == 2
    assert capsys.readouterr().err == f"{source}:2:3: error: what\n      oops\n      ^\n"


def test_interrupts_and_bugs(capsys):
    assert ending_with(KeyboardInterrupt())([]) == 130
    assert ending_with(ZeroDivisionError("division by zero"))([]) == 70
    assert capsys.readouterr().err == ("archc: internal error (please report): ZeroDivisionError: "
                                       "division by zero\n")


def test_a_missing_source_is_no_such_file_even_when_the_output_exists(tmp_path, capsys):
    output = tmp_path / "existing.prototxt"
    output.write_text("kept\n")
    assert main([str(tmp_path / "missing.arch"), "-o", str(output)]) == 2
    assert capsys.readouterr().err == f"archc: error: no such file: {tmp_path / 'missing.arch'}\n"
    assert output.read_text() == "kept\n"


def test_a_misspelt_parameter_is_a_command_line_error(tmp_path, capsys):
    source = tmp_path / "m.arch"
    source.write_text("# a comment first\n" + NET)
    assert main([str(source), "--size_y", "8"]) == 2
    assert capsys.readouterr().err == (f"archc: error: --size_y is not a parameter of {source}; "
                                       f"did you mean --size_x?\n")
    assert main([str(source), "--depth", "8"]) == 2
    assert capsys.readouterr().err == (f"archc: error: --depth is not a parameter of {source}; "
                                       f"its parameters are --size_x\n")
    resnext = str(REPO / "archs" / "resnext.arch")
    assert main([resnext, "--dpeth", "50"]) == 2
    assert capsys.readouterr().err == (f"archc: error: --dpeth is not a parameter of {resnext}; "
                                       f"did you mean --depth?\n")


@pytest.mark.parametrize("args, message", [
    (["--size_x", "1", "--size-x", "2"], "--size_x is given twice (as --size_x and --size-x)"),
    (["--size-x=1", "--size-x", "2"], "--size_x is given twice: give each parameter once"),
])
def test_a_parameter_given_twice_in_any_spelling_is_refused(tmp_path, capsys, args, message):
    source = tmp_path / "m.arch"
    source.write_text(NET)
    assert main([str(source), *args]) == 2
    assert message in capsys.readouterr().err
    assert split_overrides(["--size-x", "3"]) == {"size_x": "3"}


# Hides one module (the first argument) from the interpreter, as an install without the extra
# that brings it would.
WITHOUT_MODULE = """
import importlib.abc, sys

hidden = sys.argv.pop(1)

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == hidden or name.startswith(hidden + "."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Hide())
from archc.cli.main import main
sys.exit(main(sys.argv[1:]))
"""
MODEL = str(REPO / "archs" / "densenet.arch")


@pytest.mark.parametrize("hidden, extra, args", [
    ("cv2", "runtime", ["eval", "m.prototxt", "--weights", "w", "--val", "v"]),
    ("onnx", "onnx", ["export", MODEL, "--to", "onnx", "-o", "m.onnx", "--no-weights"]),
    ("safetensors", "torch", ["export", MODEL, "--to", "pytorch", "-o", "m"]),
])
def test_a_command_without_its_extra_names_the_install_command(tmp_path, hidden, extra, args):
    result = subprocess.run([sys.executable, "-c", WITHOUT_MODULE, hidden, *args],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (f"archc: error: this command needs archc's {extra} extra, which is "
                             f"not installed (No module named '{hidden}'): "
                             f"pip install 'archc[{extra}]'\n")


def test_the_pytorch_export_needs_no_onnx(tmp_path):
    result = subprocess.run([sys.executable, "-c", WITHOUT_MODULE, "onnx", "export", MODEL, "--to",
                             "pytorch", "-o", "out"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "model.safetensors").is_file()


@pytest.mark.parametrize("command", ["eval", "time", "weights", "graph"])
def test_every_option_says_what_it_takes_and_does(command, monkeypatch):
    import importlib
    monkeypatch.setenv("COLUMNS", "100")
    parser = importlib.import_module(f"archc.cli.cmd_{command}").build_parser()
    for action in parser._actions:
        if action.option_strings and action.nargs != 0:
            # a value's shape, not argparse's upper-cased option name (`--iterations ITERATIONS`)
            assert action.choices or action.metavar, action.option_strings
        if action.option_strings:
            assert action.help, f"{action.option_strings} has no description"
    usage = parser.format_usage().splitlines()
    assert all(len(line) <= 100 for line in usage), usage
