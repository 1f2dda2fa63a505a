"""Which team a call acts for.

Until API tokens land (the security issue), every call acts for the configured default team; all
storage keys already carry the team, so tenancy only changes how the team is found.
"""

from __future__ import annotations


class TeamResolver:
    def __init__(self, default_team: str):
        self._default_team = default_team

    def __call__(self, context) -> str:
        return self._default_team
