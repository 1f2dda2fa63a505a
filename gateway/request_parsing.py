"""Requests that are not valid protobuf get INVALID_ARGUMENT, not gRPC's INTERNAL.

gRPC parses a request before any servicer or interceptor sees it and answers a parse failure with
INTERNAL ("Exception deserializing request"), which reads as a server fault. This interceptor (the
outermost) takes the parsing over: the handler receives raw bytes and parses them itself. A unary
request that does not parse ends the call with INVALID_ARGUMENT at once; a message of a request
stream that does not parse raises InvalidArgument where the servicer reads it, which the servicer's
error handling turns into the same status."""

from __future__ import annotations

import grpc

from dfp.grpc_util import behavior_field
from gateway.errors import InvalidArgument


def _parser(deserialize, method: str):
    def parse(data: bytes):
        try:
            return deserialize(data) if deserialize is not None else data
        except Exception:
            raise InvalidArgument(f"the request is not a valid protobuf message for {method}; "
                                  "check the client's stubs") from None

    return parse


class RequestParsingInterceptor(grpc.ServerInterceptor):
    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return handler
        parse = _parser(handler.request_deserializer, handler_call_details.method)
        field = behavior_field(handler)
        behavior = getattr(handler, field)
        if handler.request_streaming:
            def parsed(request_iterator, context):
                return behavior((parse(data) for data in request_iterator), context)
        else:
            def parsed(data, context):
                try:
                    request = parse(data)
                except InvalidArgument as exc:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
                return behavior(request, context)

        return handler._replace(request_deserializer=None, **{field: parsed})
