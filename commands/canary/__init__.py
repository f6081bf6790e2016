"""Canary analysis: every canary is watched, judged against its baseline, promoted in steps
or rolled back.

- A *watch* starts for every deploy that leaves a canary next to the serving (stable)
  version. Every `[canary] interval` (default 5 min) the bot adds the windows that closed
  since its last look (`Platform.canary_window`: per deployed model, requests, errors and
  the latency distribution) to the watch's evidence, each window once, and the sequential
  judge (`stats.py`, through `judge.py`) says `regression`, `no regression` or
  `undecided` (never a pass without evidence). Evidence belongs to one traffic share.
- Each check is recorded (time, figures, verdict, windows), audited, posted as one line and
  a chart in the deploy change's thread; the change's message carries the summary.
- A regression: the bot rolls back where the environment's `canary_auto_rollback` allows
  (`yes`, or `page` to also page the ops channel), with the bot as the actor and the
  figures as the reason; with `ask` it posts Rollback and Promote-anyway buttons and waits.
  Undecided longer than `max_undecided` asks too.
- A step plan moves the canary one step after each "no regression" at the current share,
  held during change freezes (`commands.canary.steps`).

`check_due(rt)` is the timed entry point (the scheduler calls it); `/aiops canary`
runs the same check now.
"""
