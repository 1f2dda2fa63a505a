"""dfp.v1.MediaService: proto in, MediaStore call, proto out."""

from __future__ import annotations

import datetime as dt

from google.protobuf import duration_pb2, timestamp_pb2

from dfp.v1 import media_pb2, media_pb2_grpc
from gateway.errors import InvalidArgument, abort_on_error, abort_on_error_stream
from gateway.media_store import MediaRecord, MediaStore, UploadRequest
from gateway.auth import TeamResolver

_MEDIA_TYPES = {"image": media_pb2.IMAGE, "video": media_pb2.VIDEO}


def media_proto(record: MediaRecord) -> media_pb2.Media:
    message = media_pb2.Media(
        name=record.name,
        media_type=_MEDIA_TYPES[record.media_type],
        content_type=record.content_type,
        display_name=record.display_name,
        size_bytes=record.size_bytes,
        sha256=record.sha256,
        width=record.width,
        height=record.height,
        frame_rate=record.frame_rate,
        frame_count=record.frame_count,
        has_audio=record.has_audio,
        labels=record.labels,
    )
    message.create_time.CopyFrom(_timestamp(record.create_time))
    if record.expire_time:
        message.expire_time.CopyFrom(_timestamp(record.expire_time))
    if record.media_type == "video":
        duration = duration_pb2.Duration()
        duration.FromNanoseconds(int(record.duration_s * 1e9))
        message.duration.CopyFrom(duration)
    return message


def _timestamp(iso: str) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(dt.datetime.fromisoformat(iso))
    return stamp


def _upload_request(metadata: media_pb2.UploadMediaMetadata) -> UploadRequest:
    retention = None
    if metadata.HasField("retention") and metadata.retention.ToNanoseconds():
        retention = metadata.retention.ToTimedelta()
    return UploadRequest(
        display_name=metadata.display_name,
        sha256=metadata.sha256,
        declared_size=metadata.size_bytes,
        retention=retention,
        labels=dict(metadata.labels),
    )


def _chunks(requests):
    for request in requests:
        if request.WhichOneof("payload") != "chunk":
            raise InvalidArgument("only the first message may carry metadata; later ones carry chunks")
        yield request.chunk


class MediaServicer(media_pb2_grpc.MediaServiceServicer):
    def __init__(self, media: MediaStore, team_of: TeamResolver):
        self._media = media
        self._team_of = team_of

    @abort_on_error
    def UploadMedia(self, request_iterator, context):
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("payload") != "metadata":
            raise InvalidArgument("the first message of an upload must carry metadata (with the file's sha256)")
        record = self._media.upload(self._team_of(context), _upload_request(first.metadata), _chunks(request_iterator))
        return media_proto(record)

    @abort_on_error_stream
    def DownloadMedia(self, request, context):
        record = self._media.get(self._team_of(context), request.name)
        yield media_pb2.DownloadMediaResponse(media=media_proto(record))
        for chunk in self._media.read_chunks(record):
            yield media_pb2.DownloadMediaResponse(chunk=chunk)

    @abort_on_error
    def GetMedia(self, request, context):
        return media_proto(self._media.get(self._team_of(context), request.name))

    @abort_on_error
    def ListMedia(self, request, context):
        records, token = self._media.list(self._team_of(context), request.page_size, request.page_token)
        return media_pb2.ListMediaResponse(media=[media_proto(r) for r in records], next_page_token=token)

    @abort_on_error
    def DeleteMedia(self, request, context):
        self._media.delete(self._team_of(context), request.name)
        return media_pb2.DeleteMediaResponse()
