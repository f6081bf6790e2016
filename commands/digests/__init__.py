"""The morning and end-of-day digests: the team's daily checklist as one message each.

Composed from a constant number of platform calls (health of every endpoint at once,
alerts, and — when the platform keeps them — metric history and daily costs), the store
and the audit table. The reply is renderer-neutral, reads well on a phone (a header, one
line per endpoint with a status mark, details in fields) and always fits Slack's limits:
at most 50 blocks, 3000 characters a section, 10 fields; with hundreds of endpoints the
breaching ones come first and the rest are summarised as "N healthy".
"""
