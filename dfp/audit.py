"""The audit log: who did what to which resource, and when, append-only in the object store.

Objects at ``audit/{team}/{YYYY-MM-DD}/{time}-{random}.jsonl`` in the admin bucket, one event per
line, as many events of one team and day as the writer had at hand (one object per event would be
one object store round trip per call: under load, the gateway's biggest cost). Each is written only
if absent (never overwritten), so the log can grow but not be rewritten through this code; keys
start with their first event's time, so a day or a range of days is one listing. Objects named
``.json`` hold one event (the layout before). An event records the team, the token id and name,
the action (the RPC), the resources it named (``media/...``, ``operations/...``, a model), the
outcome (a gRPC status code name) and the time.
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
    return f"{PREFIX}{team}/{when:%Y-%m-%d}/{stamp}-{secrets.token_hex(4)}.jsonl"


def event(team: str, token_id: str, token_name: str, action: str, resources: list[str], outcome: str,
          when: dt.datetime | None = None) -> dict:
    """An audit event, stamped now unless ``when`` is given."""
    when = when or dt.datetime.now(dt.timezone.utc)
    return {"time": when.isoformat(), "team": check_team(team), "token_id": token_id, "token_name": token_name,
            "action": action, "resources": resources, "outcome": outcome}


class AuditLog:
    def __init__(self, store: ObjectStore):
        self._store = store

    def record(self, team: str, token_id: str, token_name: str, action: str, resources: list[str], outcome: str,
               when: dt.datetime | None = None) -> dict:
        recorded = event(team, token_id, token_name, action, resources, outcome, when)
        self.record_events([recorded])
        return recorded

    def record_events(self, events: list[dict]) -> None:
        """Writes ``events`` (from `event`, all of one team and day) as one object."""
        if len({(item["team"], item["time"][:10]) for item in events}) != 1:
            raise ValueError("one audit object holds the events of one team and one day")
        events = sorted(events, key=lambda item: item["time"])
        body = "".join(json.dumps(item) + "\n" for item in events).encode()
        first = dt.datetime.fromisoformat(events[0]["time"])
        while True:
            try:
                self._store.put_conditional(ADMIN, _key(events[0]["team"], first), body)
                return
            except PreconditionFailed:
                continue  # the same microsecond and random suffix: draw another suffix

    def teams(self) -> list[str]:
        return sorted({item.key[len(PREFIX):].split("/")[0] for item in self._store.list(ADMIN, PREFIX)})

    def events(self, team: str, since: dt.date | None = None, until: dt.date | None = None,
               action: str = "", resource: str = "") -> Iterator[dict]:
        """A team's events in time order, from day ``since`` to day ``until`` (inclusive)."""
        prefix = f"{PREFIX}{check_team(team)}/"
        start_after = f"{prefix}{since - dt.timedelta(days=1):%Y-%m-%d}/~" if since else None
        day_events: list[dict] = []
        current_day = None
        for item in self._store.list(ADMIN, prefix, start_after=start_after):
            day = item.key[len(prefix):].split("/")[0]
            if until and day > f"{until:%Y-%m-%d}":
                break
            if day != current_day:
                yield from _matching(sorted(day_events, key=lambda e: e["time"]), action, resource)
                day_events, current_day = [], day
            day_events.extend(self._read(item.key))
        yield from _matching(sorted(day_events, key=lambda e: e["time"]), action, resource)

    def _read(self, key: str) -> list[dict]:
        body = self._store.get_bytes(ADMIN, key)[0]
        if key.endswith(".json"):
            return [json.loads(body)]
        return [json.loads(line) for line in body.decode().splitlines() if line]


def _matching(events: list[dict], action: str, resource: str) -> Iterator[dict]:
    for item in events:
        if action and item["action"] != action:
            continue
        if resource and resource not in item["resources"]:
            continue
        yield item
