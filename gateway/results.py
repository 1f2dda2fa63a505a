"""Storing what a job made as a media item."""

from __future__ import annotations

import pathlib

from gateway.jobs import JobContext
from gateway.media_store import MediaStore


def store_result(media: MediaStore, job: JobContext, path: pathlib.Path, display_name: str, generator: str):
    """The job's result as a media item labelled synthetic, under the operation's id (a re-run after a
    lost worker overwrites it instead of adding a second one)."""
    operation_id = job.name.split("/", 1)[1]
    labels = {"dfp_synthetic": "true", "dfp_generator": generator, "dfp_operation": operation_id}
    return media.store_generated(job.team, path, display_name, labels, media_id=operation_id)
