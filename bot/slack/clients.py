"""Every Slack client the bot talks through, built in one place with the same retries.

Why: slack_sdk's clients retry only connection errors unless told otherwise, so a
`429 Too Many Requests` (Slack's "slow down", with `Retry-After` in seconds) or a 500/503
would drop a card, a thread line or a command's answer. `chat.postMessage` allows about
one message a second per channel, and a busy approvals channel reaches that. Each client
here carries slack_sdk's own handlers: connection errors, rate limits (waits
`Retry-After`, then sends again) and server errors (backs off, then sends again). The sync
clients sleep on the worker thread that posts; the async ones `await asyncio.sleep`, so the
event loop that acks keeps acking meanwhile.

A retried `chat.postMessage` after a 500 may, rarely, post twice (Slack stored the first);
a duplicated card is a smaller harm than a lost one, and the database's compare-and-set
makes a second click on either card a no-op.
"""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook import WebhookClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

# How many times one call is sent again. A rate limit waits `Retry-After` each time (plus
# up to a second of jitter); server errors back off 0.5 s, 1 s, 2 s.
RATE_LIMIT_RETRIES = 5
SERVER_ERROR_RETRIES = 3
CONNECTION_RETRIES = 2


def retry_handlers() -> list[RetryHandler]:
    """The retries of every sync client (WebClient, WebhookClient)."""
    return [
        ConnectionErrorRetryHandler(max_retry_count=CONNECTION_RETRIES),
        RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ServerErrorRetryHandler(max_retry_count=SERVER_ERROR_RETRIES),
    ]


def async_retry_handlers() -> list[AsyncRetryHandler]:
    """The retries of every async client (AsyncWebClient, AsyncWebhookClient)."""
    return [
        AsyncConnectionErrorRetryHandler(max_retry_count=CONNECTION_RETRIES),
        AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        AsyncServerErrorRetryHandler(max_retry_count=SERVER_ERROR_RETRIES),
    ]


def web_client(token: str, base_url: str | None = None) -> WebClient:
    """The Web API from worker threads: the notifier, user groups, chart uploads."""
    return WebClient(
        token=token, base_url=base_url or WebClient.BASE_URL, retry_handlers=retry_handlers()
    )


def async_web_client(token: str, base_url: str | None = None) -> AsyncWebClient:
    """The Web API on the event loop (Bolt's own client)."""
    return AsyncWebClient(
        token=token,
        base_url=base_url or AsyncWebClient.BASE_URL,
        retry_handlers=async_retry_handlers(),
    )


def webhook_client(response_url: str) -> WebhookClient:
    """A command's answer on its response URL, from a worker."""
    return WebhookClient(response_url, retry_handlers=retry_handlers())


def async_webhook_client(response_url: str) -> AsyncWebhookClient:
    """A command's answer on its response URL, from the event loop (Bolt's `respond`
    builds its client without retries, so the bot answers through this one)."""
    return AsyncWebhookClient(response_url, retry_handlers=async_retry_handlers())


async def respond(response_url: str, payload: dict[str, Any]) -> int:
    """Post `payload` (text, blocks, response_type…) to a response URL from the event loop;
    Slack's HTTP status once the retries are spent (200: it arrived)."""
    resp = await async_webhook_client(response_url).send_dict(payload)
    return resp.status_code
