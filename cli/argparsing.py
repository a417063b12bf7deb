"""The subcommands' argparse: a parser that raises UsageError, and bounded integers."""
from __future__ import annotations

import argparse

from archc.errors import UsageError


def integer_at_least(minimum: int):
    """An argparse `type`: an integer of at least `minimum`, with a message naming the bound."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
        if value < minimum:
            bound = "a positive integer" if minimum == 1 else f"{minimum} or more"
            raise argparse.ArgumentTypeError(f"expected {bound}, got {value}")
        return value
    return parse


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so every command reports alike."""

    def error(self, message: str):
        raise UsageError(message)
