"""One place that prints: results to stdout (text or JSON lines), progress and hints to stderr."""

from __future__ import annotations

import json
import sys

import click
from google.protobuf import json_format
from google.protobuf.message import Message


def emit(value, as_json: bool, text: str | None = None) -> None:
    """Prints a result: one JSON line with --json, else `text` (or the value itself)."""
    if isinstance(value, Message):
        value = json_format.MessageToDict(value, preserving_proto_field_name=True)
    if as_json:
        click.echo(json.dumps(value, sort_keys=True))
    else:
        click.echo(text if text is not None else json.dumps(value, indent=2, sort_keys=True))


def note(message: str) -> None:
    click.echo(message, err=True)


class Progress:
    """A progress bar on stderr, shown only when stderr is a terminal and not --quiet."""

    def __init__(self, total: int, unit: str, description: str, quiet: bool = False):
        self._bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=unit, unit_scale=unit == "B", desc=description, file=sys.stderr, leave=False)

    def update_to(self, done: int, total: int | None = None) -> None:
        if self._bar is None:
            return
        if total:
            self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
