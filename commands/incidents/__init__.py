"""Respond: alerts, incidents from declaration to review, paging and hand-off."""
