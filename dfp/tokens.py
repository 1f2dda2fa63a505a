"""API tokens: who may call the gateway, and for which team.

A token reads ``dfp_{token_id}_{secret}``: the id (16 random characters) names its record, the secret
(256 random bits) is never stored, only its SHA-256, so a leaked bucket gives no working token (a
random 256-bit secret needs no salt or slow hash). Records live in the admin bucket at
``tokens/{token_id}.json``: team, name, hash, creation and revocation times. Revoking keeps the
record, so the audit trail still says whose token it was. Tokens are created and revoked by an
administrator with object store credentials (``dfp admin token ...``), never over the API.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets

from dfp.ids import check_team
from dfp.storage import ADMIN, NotFound, ObjectStore

PREFIX = "tokens/"
_TOKEN = re.compile(r"^dfp_([a-z2-7]{16})_([A-Za-z0-9_-]{43})$")


class TokenError(ValueError):
    """A token request that cannot be carried out (unknown id, bad team or name)."""


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who a valid token speaks for."""

    team: str
    token_id: str
    name: str


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


class TokenStore:
    def __init__(self, store: ObjectStore):
        self._store = store

    def create(self, team: str, name: str) -> tuple[str, str]:
        """A new token for ``team``: returns (token id, the token). The token is shown only here."""
        check_team(team)
        if not name or len(name) > 100:
            raise TokenError("a token needs a name of 1-100 characters (who or what uses it)")
        token_id = base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()
        secret = secrets.token_urlsafe(32)
        record = {"id": token_id, "team": team, "name": name, "sha256": _digest(secret), "created": _now(),
                  "revoked": None}
        self._store.put_conditional(ADMIN, f"{PREFIX}{token_id}.json", json.dumps(record).encode())
        return token_id, f"dfp_{token_id}_{secret}"

    def revoke(self, token_id: str) -> dict:
        record = self.get(token_id)
        if record["revoked"] is None:
            record["revoked"] = _now()
            self._store.put_json(ADMIN, f"{PREFIX}{token_id}.json", record)
        return record

    def get(self, token_id: str) -> dict:
        if not re.fullmatch(r"[a-z2-7]{16}", token_id):
            raise TokenError(f"{token_id!r} is not a token id (16 characters a-z, 2-7)")
        try:
            return self._store.get_json(ADMIN, f"{PREFIX}{token_id}.json")[0]
        except NotFound:
            raise TokenError(f"no token with id {token_id}") from None

    def list(self, team: str | None = None) -> list[dict]:
        records = [self._store.get_json(ADMIN, item.key)[0] for item in self._store.list(ADMIN, PREFIX)]
        return [{k: v for k, v in r.items() if k != "sha256"} for r in records if team is None or r["team"] == team]

    def authenticate(self, token: str) -> Principal | None:
        """The principal of a valid, unrevoked token; None for anything else."""
        match = _TOKEN.match(token)
        if not match:
            return None
        token_id, secret = match.groups()
        try:
            record = self._store.get_json(ADMIN, f"{PREFIX}{token_id}.json")[0]
        except NotFound:
            return None
        if record["revoked"] is not None or not hmac.compare_digest(record["sha256"], _digest(secret)):
            return None
        return Principal(record["team"], token_id, record["name"])
