"""Cloud Monitoring's webhook notifications (schema 1.2) read into AlertNotices: realistic
payloads (tests/fixtures/cloud_monitoring/), the channel's two kinds of credentials, the
endpoint mapping, and every way a body is refused — with reasons that quote nothing."""

from __future__ import annotations

import base64
import copy
import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from bot.alerts.cloud_monitoring import (
    KEY_PREFIX,
    MAX_BODY,
    MAX_INCIDENT_ID,
    AlertAuthError,
    AlertPayloadError,
    check_auth,
    parse_notification,
    read_notification,
)
from commands.config import Config, ConfigError, parse_config
from commands.incidents.model import AlertSource, AlertState
from tests.support.harness import BUNDLED_CONFIG

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cloud_monitoring"
TOKEN = "s3cret-webhook-token-0123456789abcdef"
SECRETS = {"AIOPS_ALERT_WEBHOOK_TOKEN": TOKEN}
BASIC = {
    "Authorization": "Basic " + base64.b64encode(f"cloud-monitoring:{TOKEN}".encode()).decode()
}


def raw_config(**alerts: Any) -> dict[str, Any]:
    data = tomllib.loads(BUNDLED_CONFIG.read_text())
    data["endpoints"]["loan-assessor"]["vertex_id"] = "4512398765432109876"
    data["endpoints"]["loan-assessor-stg"]["vertex_id"] = "7712398765432100001"
    if alerts:
        data["alerts"] = alerts
    return data


@pytest.fixture
def config() -> Config:
    return parse_config(
        raw_config(policies={"[staging] batch scoring errors": "loan-assessor-stg"}),
        "bot.toml",
    )


def payload(name: str = "open_p95_latency") -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def body(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def read(data: dict[str, Any] | bytes, config: Config) -> Any:
    raw = data if isinstance(data, bytes) else body(data)
    return read_notification(raw, BASIC, {}, config, SECRETS)


def test_an_open_notification_becomes_a_notice(config: Config) -> None:
    notice = read(payload(), config)
    assert notice.key == "cloud-monitoring:0.nqk3xu7d9f2a"
    assert notice.source is AlertSource.CLOUD_MONITORING
    assert notice.state is AlertState.OPEN
    assert notice.policy == "[prod] loan-assessor: P95 prediction latency > 2000 ms"
    assert notice.condition == "P95 latency above 2000 ms for 300 s"
    assert notice.started_at == datetime(2026, 11, 28, 7, 22, tzinfo=UTC)
    assert notice.ended_at is None
    assert (notice.endpoint, notice.environment) == ("loan-assessor", "prod")
    assert notice.observed == "Prediction latencies 2,341 ms > 2,000 ms"
    assert notice.url == (
        "https://console.cloud.google.com/monitoring/alerting/incidents/0.nqk3xu7d9f2a"
        "?project=lender-aiops-prod"
    )
    assert notice.summary.startswith("Prediction latencies for lender-aiops-prod")
    assert "/rollback loan-assessor" in notice.documentation
    assert notice.labels["endpoint_id"] == "4512398765432109876"
    assert notice.labels["threshold"] == "p95-latency"


def test_the_closed_notification_is_the_same_alert_closed(config: Config) -> None:
    opened, closed = read(payload(), config), read(payload("closed_p95_latency"), config)
    assert closed.key == opened.key
    assert closed.state is AlertState.CLOSED
    assert closed.ended_at == datetime(2026, 11, 28, 8, 5, tzinfo=UTC)
    assert closed.started_at == opened.started_at
    assert "returned to normal" in closed.summary


def test_the_consoles_test_notification_upper_case_state_is_read(config: Config) -> None:
    data = payload()
    data["incident"]["state"] = "OPEN"
    assert read(data, config).state is AlertState.OPEN


def test_the_endpoint_comes_from_the_resource_then_the_policy_label_then_the_config(
    config: Config,
) -> None:
    by_label = payload()
    by_label["incident"]["resource"]["labels"] = {"project_id": "lender-aiops-prod"}
    assert read(by_label, config).endpoint == "loan-assessor"  # policy label aiops_endpoint

    by_config = payload()
    by_config["incident"]["resource"] = {"type": "global", "labels": {}}
    by_config["incident"]["policy_user_labels"] = {}
    by_config["incident"]["policy_name"] = "[staging] batch scoring errors"
    by_config["incident"]["scoping_project_id"] = "lender-aiops-staging"
    notice = read(by_config, config)
    assert (notice.endpoint, notice.environment) == ("loan-assessor-stg", "staging")
    by_config["incident"]["policy_name"] = "[Staging]  Batch scoring errors"  # as typed
    assert read(by_config, config).endpoint == "loan-assessor-stg"

    # the resource wins over a policy label that names another endpoint
    both = payload()
    both["incident"]["policy_user_labels"]["aiops_endpoint"] = "loan-assessor-stg"
    assert read(both, config).endpoint == "loan-assessor"

    nothing = copy.deepcopy(by_config)
    nothing["incident"]["policy_name"] = "some other policy"
    notice = read(nothing, config)
    assert notice.endpoint is None
    assert notice.environment == "staging"  # from the incident's project alone

    unknown = copy.deepcopy(nothing)
    unknown["incident"]["scoping_project_id"] = "someone-elses-project"
    assert read(unknown, config).environment is None


def test_alerts_policies_must_name_endpoints() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(raw_config(policies={"errors (all)": "loan-asessor"}), "bot.toml")
    assert str(err.value) == (
        'bot.toml: [alerts] policies."errors (all)": `loan-asessor` is not an endpoint of'
        " [endpoints]; did you mean `loan-assessor`?"
    )


def test_personal_information_in_free_text_is_masked(config: Config) -> None:
    data = payload()
    incident = data["incident"]
    incident["summary"] = (
        "Errors for applicant jane.citizen@example.com, card 4111 1111 1111 1111, on loan-assessor"
    )
    incident["documentation"]["content"] = "Call the applicant on 0412 345 678 before retrying."
    incident["policy_user_labels"]["owner_email"] = "bob.smith@lender.example"
    notice = read(data, config)
    everything = json.dumps(
        [notice.summary, notice.documentation, notice.labels, notice.policy, notice.observed]
    )
    for secret in ("jane.citizen@example.com", "4111 1111 1111 1111", "0412 345 678", "bob.smith"):
        assert secret not in everything
    assert "[EMAIL:" in notice.summary and "[CARD:" in notice.summary
    assert "on loan-assessor" in notice.summary  # the rest is kept
    assert notice.labels["owner_email"].startswith("[EMAIL:")
    assert notice.labels["aiops_endpoint"] == "loan-assessor"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: {**d, "version": "1.1"}, 'schema version "1.1" is not read; only 1.2 is'),
        (lambda d: {**d, "version": "test"}, "the console's test notification"),
        (lambda d: {k: v for k, v in d.items() if k != "version"}, "schema version absent"),
        (
            lambda d: {
                **d,
                "incident": {k: v for k, v in d["incident"].items() if k != "incident_id"},
            },
            "not a Cloud Monitoring incident: incident.incident_id missing",
        ),
        (
            lambda d: {**d, "incident": {**d["incident"], "state": "flapping"}},
            "incident.state not one of the allowed values",
        ),
        (
            lambda d: {**d, "incident": {**d["incident"], "started_at": "yesterday"}},
            "incident.started_at not a whole number",
        ),
        (lambda d: {**d, "incident": "0.nqk3xu7d9f2a"}, "incident not an object"),
        (lambda d: [d], "the body is not a JSON object"),
    ],
)
def test_a_payload_that_is_not_a_1_2_incident_is_refused(
    config: Config, make: Any, reason: str
) -> None:
    with pytest.raises(AlertPayloadError) as err:
        read(body(make(payload())), config)
    assert reason in str(err.value)
    assert "\n" not in str(err.value)


def test_several_missing_fields_are_all_named_without_their_values(config: Config) -> None:
    data = payload()
    for key in ("incident_id", "policy_name", "started_at", "state"):
        del data["incident"][key]
    data["incident"]["summary"] = {"applicant": "jane.citizen@example.com"}  # wrong type, PII
    with pytest.raises(AlertPayloadError) as err:
        read(data, config)
    message = str(err.value)
    assert message.startswith("not a Cloud Monitoring incident: incident.incident_id missing;")
    assert message.endswith("and 2 more")
    assert "jane" not in message


def test_non_json_and_non_utf8_and_empty_bodies_are_refused(config: Config) -> None:
    with pytest.raises(AlertPayloadError, match=r"^the body is not JSON \(Expecting value"):
        read(b"incident=0.abc&state=open", config)
    with pytest.raises(AlertPayloadError, match="not UTF-8"):
        read(b'{"version": "1.2", "x": "\xff"}', config)
    with pytest.raises(AlertPayloadError, match="empty"):
        read(b"  ", config)


def test_an_oversized_body_is_refused_before_credentials_or_parsing(config: Config) -> None:
    data = payload()
    data["incident"]["documentation"]["content"] = "x" * MAX_BODY
    with pytest.raises(AlertPayloadError) as err:
        read_notification(body(data), {}, {}, config, {})  # no credentials at all
    assert str(err.value).startswith("the body is 6")
    assert "at most 65,536" in str(err.value)
    data["incident"]["documentation"]["content"] = "x" * 9000  # a long but real one
    assert read(data, config).documentation.startswith("xxx")


def test_the_token_in_the_query_or_basic_credentials_are_accepted(config: Config) -> None:
    raw = body(payload())
    assert read_notification(raw, {}, {"auth_token": TOKEN}, config, SECRETS).endpoint
    assert read_notification(raw, {}, parse_qs(f"auth_token={TOKEN}"), config, SECRETS)
    lower = {"authorization": BASIC["Authorization"]}
    assert read_notification(raw, lower, {}, config, SECRETS).endpoint
    custom = {**SECRETS, "AIOPS_ALERT_WEBHOOK_USER": "monitoring"}
    with pytest.raises(AlertAuthError):
        read_notification(raw, BASIC, {}, config, custom)  # user cloud-monitoring no more


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, {}),
        ({}, {"auth_token": TOKEN[:-1]}),
        ({}, {"auth_token": TOKEN + "x"}),
        ({}, {"auth_token": [TOKEN, "other"]}),  # two tokens are not a token
        ({}, {"token": TOKEN}),
        ({"Authorization": f"Bearer {TOKEN}"}, {}),
        ({"Authorization": "Basic " + base64.b64encode(b"cloud-monitoring:wrong").decode()}, {}),
        ({"Authorization": "Basic " + base64.b64encode(f"intruder:{TOKEN}".encode()).decode()}, {}),
        ({"Authorization": "Basic " + base64.b64encode(TOKEN.encode()).decode()}, {}),
        ({"Authorization": "Basic %%%not-base64"}, {}),
    ],
)
def test_anything_else_is_refused(
    config: Config, headers: dict[str, str], query: dict[str, Any]
) -> None:
    with pytest.raises(AlertAuthError) as err:
        read_notification(body(payload()), headers, query, config, SECRETS)
    assert TOKEN not in str(err.value) and TOKEN[:-1] not in str(err.value)


def test_no_token_configured_refuses_every_request(config: Config) -> None:
    for secrets in ({}, {"AIOPS_ALERT_WEBHOOK_TOKEN": "  "}):
        with pytest.raises(AlertAuthError, match="no webhook token is configured"):
            read_notification(body(payload()), BASIC, {"auth_token": TOKEN}, config, secrets)
    assert not check_auth(BASIC, {"auth_token": ""}, None, None)
    assert not check_auth({}, {"auth_token": ""}, "", ("cloud-monitoring", ""))
    empty_basic = {"Authorization": "Basic " + base64.b64encode(b"cloud-monitoring:").decode()}
    assert not check_auth(empty_basic, {}, None, ("cloud-monitoring", ""))


def test_credentials_are_checked_before_the_body_is_read(config: Config) -> None:
    with pytest.raises(AlertAuthError):
        read_notification(b"not json at all", {}, {}, config, SECRETS)


def test_parse_notification_keeps_unknown_fields_out_of_the_way() -> None:
    data = payload()
    data["incident"]["apigee_url"] = "https://apigee.example"
    data["incident"]["new_field_2027"] = {"nested": [1, 2]}
    data["extra_top_level"] = True
    notification = parse_notification(body(data))
    assert notification.incident.incident_id == "0.nqk3xu7d9f2a"


def test_the_same_vertex_id_in_two_projects_is_told_apart_by_the_incidents_project() -> None:
    data = raw_config()
    data["endpoints"]["loan-assessor-stg"]["vertex_id"] = "4512398765432109876"
    config = parse_config(data, "bot.toml")
    staging = payload()
    staging["incident"]["scoping_project_id"] = "lender-aiops-staging"
    staging["incident"]["policy_user_labels"] = {}
    assert read(staging, config).endpoint == "loan-assessor-stg"
    assert read(payload(), config).endpoint == "loan-assessor"
    elsewhere = copy.deepcopy(staging)
    elsewhere["incident"]["scoping_project_id"] = "someone-elses-project"
    assert read(elsewhere, config).endpoint is None  # ambiguous: no guess


def test_a_body_nested_too_deep_is_refused_as_not_json_in_one_line(config: Config) -> None:
    """30,000 levels (60 KB, under the size cap) exhaust Python's JSON parser; a few
    hundred pass it but are no notification either, wherever they sit (pydantic keeps
    unknown fields as they are)."""
    deep = b'{"version":"1.2","incident":' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    assert len(deep) < MAX_BODY
    nested: Any = []
    for _ in range(500):
        nested = [nested]
    hidden = payload()
    hidden["incident"]["new_field_2027"] = nested  # an unknown field, kept as it is
    for raw in (deep, body(hidden)):
        with pytest.raises(AlertPayloadError) as err:
            read(raw, config)
        assert str(err.value).startswith("the body is not JSON: nested too deep")
        assert "\n" not in str(err.value)
    assert read(payload(), config).endpoint == "loan-assessor"  # five deep: read


def test_an_incident_id_is_at_most_what_the_alerts_key_column_holds(config: Config) -> None:
    """`cloud-monitoring:` + the id is `alert.key` (255): an id that would not fit is
    refused here (400), never answered 200 to fail in the worker."""
    from bot.store.incident_tables import AlertRow

    column = AlertRow.__table__.c.key.type.length  # type: ignore[attr-defined]
    assert len(KEY_PREFIX) + MAX_INCIDENT_ID <= column
    data = payload()
    data["incident"]["incident_id"] = "0." + "x" * (MAX_INCIDENT_ID - 2)
    assert len(read(data, config).key) <= column
    data["incident"]["incident_id"] += "x"
    with pytest.raises(AlertPayloadError) as err:
        read(data, config)
    assert str(err.value) == (
        "not a Cloud Monitoring incident: incident.incident_id too long"
        f" (at most {MAX_INCIDENT_ID} characters)"
    )
