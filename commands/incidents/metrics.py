"""An incident's response times: time to detect, acknowledge, mitigate and resolve.

One definition, used by the post-incident review and the digests. The moments come from
the incident and its alert (`Incident`, `AlertRecord`); each time is the span between two
of them, None ("—") while its end has not been reached or its start is unknown:

- began: when the problem began as far as the records tell: the alert's `started_at`
  (Cloud Monitoring's incident start; the health watch's first breaching window). An
  incident declared without an alert has no record of when its problem began.
- detected: when people were told: the alert's arrival (`AlertRecord.received_at`, when
  the bot got it and posted it), else the declaration. With an `alert_id` but no alert
  record at hand, the alert's start as the incident keeps it (`detected_at`) stands for
  its arrival (a little early, so the later times come out a little long, never short)
  and time to detect is unknown.
- acknowledged: the first acknowledgement, of the alert or of the incident.
- mitigated: when impact stopped (`mitigated_at`); an incident resolved without being
  marked mitigated counts its resolution (a resolved incident has no impact left).
- resolved: `resolved_at`.

Time to detect = detected − began; time to acknowledge = acknowledged − detected; time to
mitigate = mitigated − detected; time to resolve = resolved − detected. Measuring the last
three from detection (the alert reaching people, PagerDuty's "triggered") is PagerDuty's
definition of time to acknowledge and time to resolve (PagerDuty Analytics: from the
incident's trigger to its first acknowledgement / its resolution) and Atlassian's of
MTTA ("from when an alert is triggered to when work begins") and of mean time to
resolve ("from detection to resolution"); time to detect is Atlassian's MTTD, from the
start of the problem to its detection. A span that comes out negative (a monitor's clock
ahead of the bot's) counts as zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from commands.durations import format_duration
from commands.incidents.model import AlertRecord, Incident

NOT_REACHED = "—"


def span(start: datetime | None, end: datetime | None) -> timedelta | None:
    """`end − start` to the whole second, at least zero; None when either is missing."""
    if start is None or end is None:
        return None
    return timedelta(seconds=max(0, round((end - start).total_seconds())))


def span_text(value: timedelta | None) -> str:
    """`12m30s`, `1h5m`, `0s` (the one duration grammar), or `—` when not reached."""
    return NOT_REACHED if value is None else format_duration(value)


@dataclass(frozen=True)
class IncidentTimes:
    """The moments of one incident (UTC) and the spans between them (see the module)."""

    began: datetime | None
    detected: datetime
    acknowledged: datetime | None
    mitigated: datetime | None
    resolved: datetime | None

    @property
    def time_to_detect(self) -> timedelta | None:
        return span(self.began, self.detected)

    @property
    def time_to_acknowledge(self) -> timedelta | None:
        return span(self.detected, self.acknowledged)

    @property
    def time_to_mitigate(self) -> timedelta | None:
        return span(self.detected, self.mitigated)

    @property
    def time_to_resolve(self) -> timedelta | None:
        return span(self.detected, self.resolved)

    def spans(self) -> dict[str, timedelta | None]:
        """The four times by their names (`time_to_detect`, …), in the order of the flow."""
        return {
            "time_to_detect": self.time_to_detect,
            "time_to_acknowledge": self.time_to_acknowledge,
            "time_to_mitigate": self.time_to_mitigate,
            "time_to_resolve": self.time_to_resolve,
        }


def incident_times(incident: Incident, alert: AlertRecord | None = None) -> IncidentTimes:
    """The moments of `incident`, with its alert record when there is one (`alert` is
    ignored unless it is the incident's own: its id is `incident.alert_id`)."""
    if alert is not None and alert.id != incident.alert_id:
        alert = None
    if alert is not None:
        began = alert.notice.started_at or incident.detected_at
        detected = alert.received_at
    elif incident.alert_id is not None:
        began = None
        detected = incident.detected_at or incident.declared_at
    else:
        began = None
        detected = incident.declared_at
    acks = [
        t
        for t in (alert.acknowledged_at if alert else None, incident.acknowledged_at)
        if t is not None
    ]
    return IncidentTimes(
        began=began,
        detected=detected,
        acknowledged=min(acks) if acks else None,
        mitigated=incident.mitigated_at or incident.resolved_at,
        resolved=incident.resolved_at,
    )
