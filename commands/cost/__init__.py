"""Cost operations: the `[cost]` settings, idle capacity the morning digest proposes to
scale down or undeploy (`capacity.py`), and budget alerts per environment (`budget.py`).

Figures come from the platform's `CostHistory` (`commands.ports`): billed cost per endpoint
and day, and yesterday's use of each deployed model (an estimate from replica-hours)."""
