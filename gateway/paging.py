"""Page sizes and opaque page tokens for List methods (AIP-158)."""

from __future__ import annotations

import base64
import binascii

from gateway.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_TOKEN_PREFIX = "v1:"


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("page_size must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_page_token(last_key: str) -> str:
    return base64.urlsafe_b64encode((_TOKEN_PREFIX + last_key).encode()).decode()


def decode_page_token(token: str, prefix: str) -> str | None:
    """The key to list after; None for the first page. Tokens for another listing are refused."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument("page_token is not a token this server issued") from None
    if not raw.startswith(_TOKEN_PREFIX) or not raw[len(_TOKEN_PREFIX):].startswith(prefix):
        raise InvalidArgument("page_token is not a token this server issued for this listing")
    return raw[len(_TOKEN_PREFIX):]
