"""Canary analysis: every canary is watched, judged against its baseline, promoted in steps
or rolled back.

- A *watch* starts for every deploy that leaves a canary next to the serving (stable)
  version. Every `[canary] interval` (default 5 min) the bot compares the canary with the
  stable version over that same window, per deployed model (`EndpointHealth.by_model`):
  P95 latency, error rate, request count — against the absolute thresholds and against
  the baseline (canary P95 ≤ `baseline_p95_ratio` × stable; canary errors ≤ stable +
  `baseline_error_margin`). Fewer than `min_requests` canary requests is *not enough
  data*, never a pass.
- Each check is recorded (time, figures, verdict, consecutive breaches), audited, and
  posted as one line in the deploy change's thread; the change's message carries the
  summary of all checks.
- `consecutive_breaches` breaches in a row: the bot rolls back where the environment's
  `canary_auto_rollback` allows (`yes`, or `page` to also page the ops channel), with the
  bot as the actor and the figures as the reason; with `ask` it posts Rollback and
  Promote-anyway buttons and waits.
- A step plan moves the canary one step after each passing window (`commands.canary.steps`).

`check_due(rt)` is the timed entry point (the scheduler calls it); `/aiops canary`
runs the same check now.
"""
