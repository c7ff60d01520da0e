"""The ``wfstudio`` argument parser: argparse, with what this CLI needs of it, and the
options many commands share.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from typing import Any, NoReturn

STORE_HELP = "event store URL (default: $WFSTUDIO_STORE or the SQLite file in your data dir)"
FILE_HELP = "a pipeline file to load (repeatable)"


class Parser(argparse.ArgumentParser):
    """argparse, explaining the one mistake it cannot: a value that starts with ``-``."""

    def error(self, message: str) -> NoReturn:
        match = re.fullmatch(r"argument (?:\S+/)?(-\S+): expected one argument", message)
        if match:
            message += (f" (a value that starts with '-' goes after '=', e.g. "
                        f"{match[1]}=-1)")
        super().error(message)

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # argparse drops a value of exactly "--" (`--input=--`) as if it ended the options,
        # leaving a list where a string belongs: it is the value.
        if action.nargs is None and arg_strings == ["--"]:
            value = self._get_value(action, "--")
            self._check_value(action, value)
            return value
        return super()._get_values(action, arg_strings)


def walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every subcommand's parser under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield from walk(child)


def describe_subcommands(parser: argparse.ArgumentParser) -> None:
    """A subcommand without a description shows its one-line help atop its own --help."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for listed in action._choices_actions:
                child = action.choices[listed.dest]
                if child.description is None and listed.help:
                    child.description = listed.help[0].upper() + listed.help[1:] + "."


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def store_option() -> Parser:
    """The ``--store`` option, as a parent parser."""
    parent = Parser(add_help=False)
    parent.add_argument("--store", help=STORE_HELP)
    return parent


def json_option(text: str = "print JSON") -> Parser:
    """The ``--json`` flag, as a parent parser."""
    parent = Parser(add_help=False)
    parent.add_argument("--json", action="store_true", help=text)
    return parent
