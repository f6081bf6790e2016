"""One change from request to finish: request, plan, rules, approval, execution,
schedule, card. Every change follows one state machine (`commands.model.TRANSITIONS`)
and is opened by one path (`commands.changes.lifecycle.open_change`)."""
