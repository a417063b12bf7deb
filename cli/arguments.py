"""Command-line reading shared by the commands: `--option value` / `--option=value`, and a model's
`--PARAM VALUE` overrides. Without argparse, which compiling a model does not need (the
subcommands' parsers are in argparsing.py)."""
from __future__ import annotations

from archc.errors import UsageError


def option_value(args: list[str], index: int) -> tuple[str, str, int]:
    """The option at `args[index]` and its value, written `--name=value` or `--name value`, and
    the index after them."""
    option, joined, value = args[index].partition("=")
    if not joined:
        if index + 1 >= len(args):
            raise UsageError(f"{option} needs a value")
        index += 1
        value = args[index]
    return option, value, index + 1


def take_option(args: list[str], option: str) -> tuple[list[str], list[str]]:
    """The values of every `option VALUE` (or `option=VALUE`) in `args`, and the other args."""
    values, rest, index = [], [], 0
    while index < len(args):
        if args[index].partition("=")[0] == option:
            _, value, index = option_value(args, index)
            values.append(value)
        else:
            rest.append(args[index])
            index += 1
    return values, rest


def split_overrides(args: list[str]) -> dict[str, str]:
    """`--depth 101 --card=64` -> {"depth": "101", "card": "64"}; `--size-x` is `--size_x`."""
    overrides: dict[str, str] = {}
    spellings: dict[str, str] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("--") or arg == "--":
            raise UsageError(f"expected --PARAM VALUE, got '{arg}'")
        option, value, index = option_value(args, index)
        if option == "--":
            raise UsageError(f"expected --PARAM VALUE, got '{arg}'")
        name = option[2:].replace("-", "_")
        if name in overrides:
            also = "" if spellings[name] == option else f" (as {spellings[name]} and {option})"
            raise UsageError(f"--{name} is given twice{also}: give each parameter once")
        overrides[name], spellings[name] = value, option
    return overrides


def models_and_overrides(args: list[str]) -> list[tuple[str, list[str]]]:
    """`A.arch --depth 16 B.prototxt` -> [("A.arch", ["--depth", "16"]), ("B.prototxt", [])]:
    each MODEL with the `--PARAM VALUE`s that follow it."""
    models: list[tuple[str, list[str]]] = []
    index = 0
    while index < len(args):
        if args[index].startswith("--") and args[index] != "--":
            if not models:
                raise UsageError(f"{args[index]} comes before any MODEL: give it after the .arch "
                                 f"file it sets")
            start = index
            _, _, index = option_value(args, index)
            models[-1][1].extend(args[start:index])
        else:
            models.append((args[index], []))
            index += 1
    return models
