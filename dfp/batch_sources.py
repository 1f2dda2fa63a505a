"""Batch items from an S3 bucket outside the platform (`s3://bucket/prefix`).

The submitter lists the objects under the prefix (each becomes an item `s3://bucket/key`); a batch
pod reads each object with the source bucket's credentials (DFP_SOURCE_S3_*, from a Secret) and
imports it through the gateway like any upload, never writing to the platform's object store
itself. The import is idempotent: the media carries the label `dfp_source` (a hash of the object's
URI), and a pod that runs again finds it among the team's media instead of uploading a second copy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import tempfile

SOURCE_LABEL = "dfp_source"
BATCH_LABEL = "dfp_batch"


class SourceError(ValueError):
    """The source URI or its bucket cannot be read; the message says why."""


@dataclasses.dataclass(frozen=True)
class SourceSettings:
    endpoint: str
    access_key: str
    secret_key: str
    secure: bool

    @classmethod
    def from_env(cls) -> "SourceSettings":
        endpoint = os.environ.get("DFP_SOURCE_S3_ENDPOINT", "")
        if not endpoint:
            raise SourceError("set DFP_SOURCE_S3_ENDPOINT (and DFP_SOURCE_S3_ACCESS_KEY, DFP_SOURCE_S3_SECRET_KEY) "
                              "to read s3:// items")
        return cls(endpoint, os.environ.get("DFP_SOURCE_S3_ACCESS_KEY", ""),
                   os.environ.get("DFP_SOURCE_S3_SECRET_KEY", ""),
                   os.environ.get("DFP_SOURCE_S3_SECURE", "true").lower() in ("1", "true", "yes"))

    def client(self):
        from minio import Minio

        return Minio(self.endpoint, access_key=self.access_key or None, secret_key=self.secret_key or None,
                     secure=self.secure)


def parse_uri(uri: str) -> tuple[str, str]:
    """(bucket, key or prefix) of `s3://bucket/key`."""
    if not uri.startswith("s3://"):
        raise SourceError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise SourceError(f"{uri!r} names no bucket")
    return bucket, key


def list_items(settings: SourceSettings, uri: str) -> list[str]:
    """Every object under the prefix, as `s3://bucket/key` items in key order."""
    from minio.error import S3Error

    bucket, prefix = parse_uri(uri)
    try:
        keys = sorted(o.object_name for o in settings.client().list_objects(bucket, prefix=prefix, recursive=True)
                      if not o.is_dir)
    except S3Error as exc:
        raise SourceError(f"cannot list {uri}: {exc.code}: {exc.message}") from None
    return [f"s3://{bucket}/{key}" for key in keys]


def source_label(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:32]


class Importer:
    """Gives each `s3://` item a media name at the gateway, uploading only what is not there yet."""

    def __init__(self, gateway_client, settings: SourceSettings, batch_id: str):
        self._client = gateway_client
        self._settings = settings
        self._batch_id = batch_id
        self._imported: dict[str, str] | None = None

    def media_name(self, item: str) -> str:
        """The item itself when it is a media name; for an s3:// item, its imported media's name."""
        if not item.startswith("s3://"):
            return item
        if self._imported is None:
            self._imported = {m.labels[SOURCE_LABEL]: m.name for m in self._client.list_media()
                              if SOURCE_LABEL in m.labels}
        label = source_label(item)
        if label not in self._imported:
            self._imported[label] = self._upload(item, label)
        return self._imported[label]

    def _upload(self, item: str, label: str) -> str:
        from minio.error import S3Error

        bucket, key = parse_uri(item)
        with tempfile.TemporaryDirectory(prefix="dfp-source-") as folder:
            path = pathlib.Path(folder) / (pathlib.PurePosixPath(key).name or "object")
            try:
                self._settings.client().fget_object(bucket, key, str(path))
            except S3Error as exc:
                raise SourceError(f"cannot read {item}: {exc.code}: {exc.message}") from None
            return self._client.upload(path, labels={SOURCE_LABEL: label, BATCH_LABEL: self._batch_id}).name
