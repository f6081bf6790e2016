"""The canary records of a runtime: one accessor, one refusal when there are none."""

from __future__ import annotations

from commands.errors import Refusal
from commands.ports import CanaryStore
from commands.runtime import Runtime


def store_of(rt: Runtime) -> CanaryStore:
    if rt.canary is None:
        raise Refusal("canary analysis has no store in this runtime", code="unavailable")
    return rt.canary
