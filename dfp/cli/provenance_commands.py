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
    made it. The C2PA manifest (Content Credentials, when the gateway signs) is checked against the
    file's bytes and, with DFP_C2PA_TRUST_ANCHORS, its signer against those roots. The tags and the
    manifest are gone after a re-encode; the watermark survives JPEG, H.264 and resizing.

    \b
    Example:
      dfp provenance verify suspicious.mp4 --json
    """
    from dfp import provenance as provenance_lib

    for path in files:
        report = provenance_lib.verify(path)
        mark, credentials = report["watermark"], report["content_credentials"]
        emit(report, as_json,
             f"{path}: watermark {'FOUND, payload ' + mark['payload'] if mark['marked'] else 'not found'} "
             f"(confidence {mark['confidence']:.1f}, {mark['frames_read']} frames); synthetic tag "
             f"{'present' if report['synthetic_tag'] else 'absent'}; C2PA {_credentials_text(credentials)}")


def _credentials_text(credentials: dict) -> str:
    if not credentials["present"]:
        return "manifest absent"
    if not credentials["valid"]:
        return f"manifest INVALID ({', '.join(credentials['errors'])}): the file changed after signing"
    trust = "trusted signer" if credentials["trusted"] else "signer not in DFP_C2PA_TRUST_ANCHORS"
    ai = "AI-generated" if credentials["generated_by_ai"] else "no AI-generation claim"
    return f"manifest valid, {ai}, generator {credentials['generator']}, {trust}"


def register(cli: click.Group) -> None:
    cli.add_command(provenance)
