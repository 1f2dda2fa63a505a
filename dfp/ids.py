"""Resource ids and names.

Ids are 128 random bits in lowercase base32 (26 characters): unguessable, and safe in object keys and
URLs. Names follow the API's resource patterns, `media/{id}` and `operations/{id}`.
"""

from __future__ import annotations

import base64
import re
import secrets

_ID = re.compile(r"^[a-z2-7]{26}$")
_TEAM = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def new_id() -> str:
    return base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()


def is_id(value: str) -> bool:
    return bool(_ID.match(value))


class BadName(ValueError):
    """A resource name that does not follow its pattern."""


def parse_name(name: str, collection: str) -> str:
    """The id in `{collection}/{id}`; raises BadName with the expected pattern otherwise."""
    prefix = collection + "/"
    if not name.startswith(prefix) or not is_id(name[len(prefix):]):
        raise BadName(f"malformed name {name!r}: expected {collection}/{{id}} with a 26-character id")
    return name[len(prefix):]


def check_team(team: str) -> str:
    if not _TEAM.match(team):
        raise ValueError(f"team {team!r} must be 1-63 lowercase letters, digits or '-'")
    return team
