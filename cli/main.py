"""`archc`: compile .arch files to deploy prototxt, and dispatch the other commands."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

from archc.files import write_atomically
from archc.cli.model import UsageError, option_value, print_error, render_error
from archc.errors import ArchError

# Kept here rather than imported from codegen so `archc doctor` and friends start without
# loading the compiler (lark, jinja2); tests check it equals codegen.render.POOL_DIALECTS.
POOL_DIALECTS = ("ceil_mode", "round_mode")

SUBCOMMANDS = {
    "diff": "semantic difference of two prototxts",
    "summary": "per-layer shapes, parameters, MACs and memory of a model",
    "eval": "accuracy of a model with weights on a val list (Caffe or OpenCV)",
    "time": "forward/backward timing per layer, like `caffe time`",
    "weights": "list a .caffemodel's layers, or write initialised weights",
    "upgrade": "rewrite a V0/V1 prototxt or .caffemodel in Caffe's current format",
    "doctor": "which Caffe and OpenCV archc finds, and what is missing",
}

USAGE = """usage: archc FILE.arch [--PARAM VALUE ...] [-o OUT] [--pool-rounding ceil_mode|round_mode]
       archc FILE.arch --help          list the file's parameters
       archc --version
       archc COMMAND ...               where COMMAND is one of:
""" + "".join(f"         {name:<9} {text}\n" for name, text in SUBCOMMANDS.items())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="", file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] == "--version":
        from importlib.metadata import version

        print(f"archc {version('archc')}")
        return 0
    try:
        if args[0] in SUBCOMMANDS:
            command = importlib.import_module(f"archc.cli.cmd_{args[0]}")
            return command.main(args[1:])
        return compile_command(args)
    except UsageError as error:
        return print_error(f"archc: error: {error}")
    except ArchError as error:
        return print_error(render_error(error))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `archc ... | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
    except Exception as error:  # a bug in archc, not the user's mistake: say so, briefly
        print(f"archc: internal error (please report): {type(error).__name__}: {error}",
              file=sys.stderr)
        return 70


def compile_command(args: list[str]) -> int:
    path, rest = args[0], args[1:]
    output, dialect, show_help, param_args = _options(rest)
    if not path.endswith(".arch"):
        raise UsageError(f"'{path}' is not an .arch file (commands: {', '.join(SUBCOMMANDS)})")
    if show_help:
        print(_describe_params(path))
        return 0
    from archc.cli.model import compile_arch, split_overrides

    if output is not None and Path(output).exists() and Path(output).samefile(path):
        raise UsageError(f"-o {output} is the source file itself: write the prototxt elsewhere")
    _, text = compile_arch(path, split_overrides(param_args), dialect)
    if output is None:
        sys.stdout.write(text)
    else:
        try:
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
    from archc import dsl
    from archc.dsl.values import allowed_text, show

    lines = [f"usage: archc {path} [--PARAM VALUE ...] [-o OUT] [--pool-rounding ceil_mode|round_mode]",
             "", "parameters:"]
    for param in dsl.file_params(path):
        allowed = "" if param.allowed is None else f"  in {allowed_text(param.allowed)}"
        lines.append(f"  --{param.name} {param.type.upper():<6} default {show(param.default)}{allowed}")
        if param.doc:
            lines.append(f"      {param.doc}")
    if len(lines) == 3:
        lines.append("  none")
    return "\n".join(lines)
