"""`dfp provenance ...`: read back the marks the platform puts on what it synthesises."""

from __future__ import annotations

import pathlib

import click

from dfp.cli.output import emit


@click.group()
def provenance() -> None:
    """Check media for the platform's synthetic-media marks."""


@provenance.command("verify")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
def verify_command(files, as_json):
    """Read the container tags and the invisible watermark of images and videos.

    A file is reported as marked when the watermark's check holds (a file without one passes by
    chance with probability 2^-16); the payload is a hash of the operation (or generator) that
    made it. The tags are gone after a re-encode; the watermark survives JPEG, H.264 and resizing.

    \b
    Example:
      dfp provenance verify suspicious.mp4 --json
    """
    from dfp import provenance as provenance_lib

    for path in files:
        report = provenance_lib.verify(path)
        mark = report["watermark"]
        emit(report, as_json,
             f"{path}: watermark {'FOUND, payload ' + mark['payload'] if mark['marked'] else 'not found'} "
             f"(confidence {mark['confidence']:.1f}, {mark['frames_read']} frames); synthetic tag "
             f"{'present' if report['synthetic_tag'] else 'absent'}")


def register(cli: click.Group) -> None:
    cli.add_command(provenance)
