"""The audit log: who did what to which resource, and when, append-only in the object store.

One object per event at ``audit/{team}/{YYYY-MM-DD}/{time}-{random}.json`` in the admin bucket,
written only if absent (never overwritten), so the log can grow but not be rewritten through this
code; keys sort by time, so a day or a range of days is one listing. An event records the team, the
token id and name, the action (the RPC), the resources it named (``media/...``, ``operations/...``,
a model), the outcome (a gRPC status code name) and the time.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Iterator

from dfp.ids import check_team
from dfp.storage import ADMIN, ObjectStore, PreconditionFailed

PREFIX = "audit/"


def _key(team: str, when: dt.datetime) -> str:
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{PREFIX}{team}/{when:%Y-%m-%d}/{stamp}-{secrets.token_hex(4)}.json"


class AuditLog:
    def __init__(self, store: ObjectStore):
        self._store = store

    def record(self, team: str, token_id: str, token_name: str, action: str, resources: list[str], outcome: str,
               when: dt.datetime | None = None) -> dict:
        when = when or dt.datetime.now(dt.timezone.utc)
        event = {"time": when.isoformat(), "team": check_team(team), "token_id": token_id, "token_name": token_name,
                 "action": action, "resources": resources, "outcome": outcome}
        while True:
            try:
                self._store.put_conditional(ADMIN, _key(team, when), json.dumps(event).encode())
                return event
            except PreconditionFailed:
                continue  # the same microsecond and random suffix: draw another suffix

    def teams(self) -> list[str]:
        return sorted({item.key[len(PREFIX):].split("/")[0] for item in self._store.list(ADMIN, PREFIX)})

    def events(self, team: str, since: dt.date | None = None, until: dt.date | None = None,
               action: str = "", resource: str = "") -> Iterator[dict]:
        """A team's events in time order, from day ``since`` to day ``until`` (inclusive)."""
        prefix = f"{PREFIX}{check_team(team)}/"
        start_after = f"{prefix}{since - dt.timedelta(days=1):%Y-%m-%d}/~" if since else None
        for item in self._store.list(ADMIN, prefix, start_after=start_after):
            day = item.key[len(prefix):].split("/")[0]
            if until and day > f"{until:%Y-%m-%d}":
                return
            event = self._store.get_json(ADMIN, item.key)[0]
            if action and event["action"] != action:
                continue
            if resource and resource not in event["resources"]:
                continue
            yield event
