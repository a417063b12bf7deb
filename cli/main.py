"""`archc`: compile .arch files to deploy prototxt, and dispatch the other commands.

`reports_errors` is the one place where errors become messages and exit statuses; every command's
`main` goes through it."""
from __future__ import annotations

import functools
import importlib
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from archc.cli.arguments import option_value, split_overrides
from archc.errors import ArchError, UsageError

# Kept here rather than imported from codegen so `archc doctor` and friends start without
# loading the compiler (lark, jinja2); tests check it equals codegen.render.POOL_DIALECTS.
POOL_DIALECTS = ("ceil_mode", "round_mode")
HELP_WIDTH = 100          # a file's --help, wrapped like argparse's
HELP_OPTION_WIDTH = 28    # its option column, at most
NO_BREAK = "\xa0"         # a space textwrap does not break at

SUBCOMMANDS = {
    "diff": "semantic difference of two nets (prototxts or .arch files)",
    "summary": "per-layer shapes, parameters, MACs and memory of a model",
    "graph": "draw a model with its blocks (SVG, PNG, clickable HTML)",
    "eval": "accuracy of a model with weights on a val list (Caffe, OpenCV, ONNX Runtime, torch)",
    "time": "forward/backward timing per layer, like `caffe time`, and images/s",
    "weights": "list a .caffemodel's layers, or write initialised weights",
    "upgrade": "rewrite a V0/V1 prototxt or .caffemodel in Caffe's current format",
    "export": "the net with its weights as ONNX or PyTorch, exact to Caffe",
    "doctor": "which Caffe and OpenCV archc finds, and what is missing",
}

USAGE = """usage: archc FILE.arch [--PARAM VALUE ...] [-o OUT] [--pool-rounding {ceil_mode,round_mode}]
       archc FILE.arch --help          list the file's parameters
       archc --version
       archc COMMAND ...               where COMMAND is one of:
""" + "".join(f"         {name:<9} {text}\n" for name, text in SUBCOMMANDS.items())

# The modules of the optional extras (pyproject.toml) that archc imports itself -> their extra;
# pycaffe's own (scipy, six, scikit-image) are reported by runtime.caffe_env.
EXTRA_OF_MODULE = {"cv2": "runtime", "matplotlib": "runtime", "onnx": "onnx", "onnxruntime": "onnx",
                   "torch": "torch", "safetensors": "torch"}
INTERRUPTED = 130   # a shell's status for SIGINT
INTERNAL_ERROR = 70  # sysexits' EX_SOFTWARE


def reports_errors(command: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
    """`command(argv)` returning its exit status, with every error it raises turned into a message
    on stderr and the status for it: an ArchError's `exit_code`, 130 on Ctrl-C, 2 and the install
    command for a missing extra, 70 for a bug."""
    @functools.wraps(command)
    def run(argv: list[str]) -> int:
        try:
            return command(argv)
        except ArchError as error:
            return report(error)
        except KeyboardInterrupt:
            return INTERRUPTED
        except BrokenPipeError:  # `archc ... | head`: the reader left, nothing to report
            sys.stderr.close()
            return 0
        except ModuleNotFoundError as error:
            extra = EXTRA_OF_MODULE.get((error.name or "").partition(".")[0])
            if extra is not None:
                return report(ArchError(f"this command needs archc's {extra} extra, which is not "
                                        f"installed ({error}): pip install 'archc[{extra}]'"))
            return internal_error(error)
        except Exception as error:  # a bug in archc, not the user's mistake: say so, briefly
            return internal_error(error)
    return run


def report(error: ArchError) -> int:
    print(render_error(error), file=sys.stderr)
    return error.exit_code


def internal_error(error: Exception) -> int:
    print(f"archc: internal error (please report): {type(error).__name__}: {error}", file=sys.stderr)
    return INTERNAL_ERROR


def render_error(error: ArchError) -> str:
    """The diagnostic with the offending source line, read from the file the span names."""
    source = None
    if error.span is not None:
        try:
            source = Path(error.span.path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            source = None
    return error.render(source)


def main(argv: list[str] | None = None) -> int:
    return dispatch(sys.argv[1:] if argv is None else argv)


@reports_errors
def dispatch(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="", file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] == "--version":
        from importlib.metadata import version

        print(f"archc {version('archc')}")
        return 0
    if args[0] in SUBCOMMANDS:
        command = importlib.import_module(f"archc.cli.cmd_{args[0]}")
        return command.main(args[1:])
    return compile_command(args)


def compile_command(args: list[str]) -> int:
    from archc.model import is_arch_file, load_model

    path, rest = args[0], args[1:]
    output, dialect, show_help, param_args = _options(rest)
    if not is_arch_file(path):
        raise UsageError(f"'{path}' is not an .arch file (commands: {', '.join(SUBCOMMANDS)})")
    if show_help:
        print(_describe_params(path))
        return 0
    # Loaded first: a missing source is "no such file", before it is compared with the output.
    text = load_model(path, split_overrides(param_args), dialect).text
    if output is not None and Path(output).exists() and Path(output).samefile(path):
        raise UsageError(f"-o {output} is the source file itself: write the prototxt elsewhere")
    if output is None:
        sys.stdout.write(text)
    else:
        try:
            from archc.files import write_atomically  # tempfile: only when a file is written
            write_atomically(Path(output), text.encode("utf-8"))
        except OSError as error:
            raise UsageError(f"cannot write {output}: {error.strerror or error}") from None
    return 0


def _options(args: list[str]):
    output, dialect, show_help, params = None, "ceil_mode", False, []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg.partition("=")[0] in ("-o", "--output", "--pool-rounding"):
            option, value, index = option_value(args, index)
            if not value:
                raise UsageError(f"{option} needs a value")
            if option == "--pool-rounding":
                dialect = value
                if dialect not in POOL_DIALECTS:
                    raise UsageError(f"--pool-rounding must be one of {', '.join(POOL_DIALECTS)}")
            else:
                output = value
            continue
        if arg in ("-h", "--help"):
            show_help = True
        else:
            params.append(arg)
        index += 1
    return output, dialect, show_help, params


def _describe_params(path: str) -> str:
    """The file's parameters as argparse lays out options: name and values, then the doc, the
    default and the allowed range, wrapped in a column of their own."""
    from archc import dsl
    from archc.dsl.values import allowed_text, show

    rows = []
    for param in dsl.file_params(path):
        allowed = None if param.allowed is None else allowed_text(param.allowed)
        listed = allowed is not None and allowed.startswith("{")
        option = f"--{param.name} {allowed if listed else param.type.upper()}"
        ranged = f"; in {allowed}" if allowed and not listed else ""
        details = f"(default: {show(param.default)}{ranged})".replace(" ", NO_BREAK)  # kept whole
        rows.append((option, f"{param.doc} {details}" if param.doc else details))
    width = min(max((len(option) for option, _ in rows), default=0), HELP_OPTION_WIDTH)
    lines = [f"usage: archc {path} [--PARAM VALUE ...] [-o OUT] [--pool-rounding "
             f"{{{','.join(POOL_DIALECTS)}}}]", "", "parameters:"]
    for option, text in rows:
        wrapped = [line.replace(NO_BREAK, " ") for line in textwrap.wrap(text, HELP_WIDTH - width - 4)]
        if len(option) > width:  # as argparse does: a long option gets its own line
            lines.append(f"  {option}")
        else:
            lines.append(f"  {option:<{width}}  {wrapped.pop(0)}")
        lines += [f"  {'':<{width}}  {line}" for line in wrapped]
    if not rows:
        lines.append("  none")
    return "\n".join(lines)
