"""Per-team quotas: how fast a team may call, how many jobs it may have unfinished, how much it may
store. Defaults come from settings (DFP_QUOTA_*); an administrator overrides them per team with
``dfp admin quota set``, kept at ``quotas/{team}.json`` in the admin bucket."""

from __future__ import annotations

import dataclasses

from dfp.config import Quota
from dfp.ids import check_team
from dfp.storage import ADMIN, NotFound, ObjectStore

PREFIX = "quotas/"


class QuotaStore:
    def __init__(self, store: ObjectStore, defaults: Quota | None = None):
        self._store = store
        self.defaults = defaults or Quota.from_env()

    def get(self, team: str) -> Quota:
        try:
            override = self._store.get_json(ADMIN, f"{PREFIX}{check_team(team)}.json")[0]
        except NotFound:
            return self.defaults
        return dataclasses.replace(self.defaults, **override)

    def set(self, team: str, **changes) -> Quota:
        """Overrides some of a team's quotas (None leaves one as it is)."""
        key = f"{PREFIX}{check_team(team)}.json"
        try:
            current = self._store.get_json(ADMIN, key)[0]
        except NotFound:
            current = {}
        for name, value in changes.items():
            if value is None:
                continue
            if name not in {f.name for f in dataclasses.fields(Quota)} or value < 0:
                raise ValueError(f"{name}={value!r} is not a quota (requests_per_minute, concurrent_jobs, "
                                 "stored_bytes; none negative)")
            current[name] = value
        self._store.put_json(ADMIN, key, current)
        return dataclasses.replace(self.defaults, **current)
