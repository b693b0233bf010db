"""DiscordNotifier against a real HTTP receiver on 127.0.0.1 (see webhook_receiver.py)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from volaris_assets.resources.notifier import DiscordNotifier, Severity
from volaris_assets_tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.timeout(30)

REPO_ROOT = Path(__file__).resolve().parents[1]
START = 1_750_000_000.0


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


def make_notifier(url: str | None, **overrides: object) -> DiscordNotifier:
    config: dict[str, object] = {
        "webhook_url": url,
        "timeout_s": 0.5,
        "max_retries": 2,
        "backoff_s": 0.01,
    }
    config.update(overrides)
    return DiscordNotifier(**config)


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/webhooks/42/closed-port-token-abcdefghijkl"


@pytest.mark.parametrize(
    ("severity", "colour"),
    [
        (Severity.INFO, 0x3498DB),
        (Severity.SUCCESS, 0x2ECC71),
        (Severity.WARNING, 0xF39C12),
        (Severity.ERROR, 0xE74C3C),
    ],
)
def test_notification_arrives_with_severity_colour_and_fields(
    receiver: WebhookReceiver, severity: Severity, colour: int
) -> None:
    notifier = make_notifier(receiver.webhook_url(), username="Volaris CI")
    notifier.set_clock(FakeClock())

    sent = notifier.notify(
        "Scan finished",
        "1,205 symbols scanned",
        severity=severity,
        fields={"succeeded": "1,199", "failed": "6"},
        url="https://dagster.example/runs/abc",
    )

    assert sent is True
    [request] = receiver.requests
    assert request.path == f"/api/webhooks/{receiver.webhook_id}/{receiver.token}"
    assert request.query == "wait=true"
    assert request.status == 200
    assert request.headers["content-type"] == "application/json"
    payload = request.payload
    assert payload["username"] == "Volaris CI"
    assert payload["allowed_mentions"] == {"parse": []}
    [embed] = payload["embeds"]
    assert embed["color"] == colour
    assert embed["title"] == "Scan finished"
    assert embed["description"] == "1,205 symbols scanned"
    assert embed["url"] == "https://dagster.example/runs/abc"
    assert [(f["name"], f["value"]) for f in embed["fields"]] == [
        ("succeeded", "1,199"),
        ("failed", "6"),
    ]
    assert datetime.fromisoformat(embed["timestamp"]) == datetime.fromtimestamp(START, UTC)


def test_query_of_the_webhook_url_is_kept(receiver: WebhookReceiver) -> None:
    notifier = make_notifier(receiver.webhook_url() + "?thread_id=77")

    assert notifier.notify("Digest", "daily") is True
    assert receiver.requests[0].query == "thread_id=77&wait=true"


def test_attachments_arrive_as_multipart_files(receiver: WebhookReceiver) -> None:
    csv = b"symbol,status\nAAPL,ok\nMSFT,timeout\n"
    notifier = make_notifier(receiver.webhook_url())

    sent = notifier.notify(
        "Scan results",
        "CSV attached",
        severity=Severity.SUCCESS,
        attachments={"scan.csv": csv, "errors.txt": b"MSFT: timeout\n"},
    )

    assert sent is True
    [request] = receiver.requests
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert request.files["scan.csv"].content == csv
    assert request.files["scan.csv"].content_type == "text/csv"
    assert request.files["scan.csv"].name == "files[0]"
    assert request.files["errors.txt"].content == b"MSFT: timeout\n"
    assert request.payload["attachments"] == [
        {"id": 0, "filename": "scan.csv"},
        {"id": 1, "filename": "errors.txt"},
    ]
    assert request.payload["embeds"][0]["title"] == "Scan results"


def test_more_attachments_than_discord_allows_are_dropped_and_noted(
    receiver: WebhookReceiver,
) -> None:
    files = {f"part{i}.csv": f"{i}\n".encode() for i in range(12)}

    assert make_notifier(receiver.webhook_url()).notify("Many", "files", attachments=files)

    [request] = receiver.requests
    assert sorted(request.files) == sorted(list(files)[:10])
    assert request.payload["embeds"][0]["footer"]["text"] == "2 attachment(s) omitted"


@pytest.mark.parametrize("url", [None, "", "   "])
def test_without_webhook_the_notification_is_skipped(
    caplog: pytest.LogCaptureFixture, url: str | None
) -> None:
    caplog.set_level(logging.INFO)

    sent = make_notifier(url).notify("Run failed", "boom", severity=Severity.ERROR)

    assert sent is False
    assert any(
        r.levelno == logging.INFO and "skipped (no webhook configured)" in r.getMessage()
        for r in caplog.records
    )
    assert warnings_in(caplog) == []


@pytest.mark.parametrize(("in_body", "in_header"), [(True, True), (True, False), (False, True)])
def test_rate_limit_waits_retry_after_then_succeeds(
    receiver: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
    in_body: bool,
    in_header: bool,
) -> None:
    receiver.rate_limit_next(1, retry_after=0.3, in_body=in_body, in_header=in_header)
    notifier = make_notifier(receiver.webhook_url(), backoff_s=0.0)

    started = time.perf_counter()
    sent = notifier.notify("Price alert", "AAPL crossed 200")
    elapsed = time.perf_counter() - started

    assert sent is True
    assert [r.status for r in receiver.requests] == [429, 200]
    assert elapsed >= 0.3
    assert warnings_in(caplog) == []


def test_rate_limit_longer_than_the_cap_gives_up_without_waiting(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.rate_limit_next(1, retry_after=120)

    started = time.perf_counter()
    sent = make_notifier(receiver.webhook_url()).notify("Price alert", "AAPL crossed 200")

    assert sent is False
    assert time.perf_counter() - started < 2
    assert len(receiver.requests) == 1
    assert len(warnings_in(caplog)) == 1


def test_server_error_forever_returns_false_with_one_warning(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.fail_next(100, status=500)

    sent = make_notifier(receiver.webhook_url(), max_retries=3).notify("Run failed", "boom")

    assert sent is False
    assert [r.status for r in receiver.requests] == [500] * 4
    [warning] = warnings_in(caplog)
    assert "failed after 4 attempt(s): HTTP 500" in warning.getMessage()


def test_server_error_then_recovery_is_delivered(receiver: WebhookReceiver) -> None:
    receiver.fail_next(2, status=503)

    assert make_notifier(receiver.webhook_url()).notify("Run failed", "boom") is True
    assert [r.status for r in receiver.requests] == [503, 503, 200]


def test_client_error_is_not_retried(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.fail_next(5, status=404)

    assert make_notifier(receiver.webhook_url()).notify("Run failed", "boom") is False
    assert len(receiver.requests) == 1
    [warning] = warnings_in(caplog)
    assert "HTTP 404" in warning.getMessage()


def test_hanging_webhook_times_out_and_returns_false(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.hang_next(5, seconds=10)
    notifier = make_notifier(receiver.webhook_url(), timeout_s=0.2, max_retries=1)

    started = time.perf_counter()
    sent = notifier.notify("Run failed", "boom")
    elapsed = time.perf_counter() - started

    assert sent is False
    assert len(receiver.requests) == 2
    assert 0.4 <= elapsed < 3
    [warning] = warnings_in(caplog)
    assert "timeout" in warning.getMessage()


def test_unreachable_webhook_returns_false(caplog: pytest.LogCaptureFixture) -> None:
    sent = make_notifier(closed_port_url(), max_retries=1).notify("Run failed", "boom")

    assert sent is False
    [warning] = warnings_in(caplog)
    assert "connection error" in warning.getMessage()


def test_duplicate_within_window_is_suppressed_and_sent_again_after(
    receiver: WebhookReceiver,
) -> None:
    clock = FakeClock()
    notifier = make_notifier(receiver.webhook_url(), dedup_window_s=900)
    notifier.set_clock(clock)

    assert notifier.notify("Freshness", "prices stale") is True
    assert notifier.notify("Freshness", "prices stale") is False
    clock.now += 899.9
    assert notifier.notify("Freshness", "prices stale") is False
    assert notifier.notify("Freshness", "options stale") is True
    clock.now += 0.1
    assert notifier.notify("Freshness", "prices stale") is True

    descriptions = [r.payload["embeds"][0]["description"] for r in receiver.requests]
    assert descriptions == ["prices stale", "options stale", "prices stale"]


def test_dedup_key_overrides_the_text(receiver: WebhookReceiver) -> None:
    notifier = make_notifier(receiver.webhook_url())

    assert notifier.notify("Run failed", "attempt 1", dedup_key="run-123") is True
    assert notifier.notify("Run failed", "attempt 2", dedup_key="run-123") is False
    assert notifier.notify("Run failed", "attempt 1", dedup_key="run-456") is True
    assert len(receiver.requests) == 2


def test_failed_send_does_not_mute_the_alert(receiver: WebhookReceiver) -> None:
    receiver.fail_next(3, status=500)
    notifier = make_notifier(receiver.webhook_url(), max_retries=2)

    assert notifier.notify("Run failed", "boom") is False
    assert notifier.notify("Run failed", "boom") is True
    assert [r.status for r in receiver.requests] == [500, 500, 500, 200]


def test_dedup_state_survives_a_fresh_process(receiver: WebhookReceiver, tmp_path: Path) -> None:
    db_path = str(tmp_path / "state" / "notifier.sqlite")
    first = make_notifier(receiver.webhook_url(), dedup_db_path=db_path)
    assert first.notify("Run failed", "boom") is True

    script = (
        "import sys\n"
        "from volaris_assets.resources.notifier import DiscordNotifier\n"
        "n = DiscordNotifier(webhook_url=sys.argv[1], dedup_db_path=sys.argv[2])\n"
        "print(n.notify('Run failed', 'boom'), n.notify('Run failed', 'other'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script, receiver.webhook_url(), db_path],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )

    assert result.stdout.split() == ["False", "True"]
    assert [r.payload["embeds"][0]["description"] for r in receiver.requests] == [
        "boom",
        "other",
    ]


def test_embed_is_clipped_to_discord_limits(receiver: WebhookReceiver) -> None:
    fields = {f"{i:02d}" + "n" * 300: "v" * 2000 for i in range(30)}
    notifier = make_notifier(receiver.webhook_url())

    assert notifier.notify("T" * 1000, "D" * 10_000, fields=fields, url="not a link") is True

    embed = receiver.requests[0].payload["embeds"][0]
    assert len(embed["title"]) == 256 and embed["title"].endswith("…")
    assert all(len(f["name"]) <= 256 and len(f["value"]) <= 1024 for f in embed["fields"])
    kept = len(embed["fields"])
    assert kept <= 25
    assert embed["footer"]["text"] == f"{30 - kept} field(s) omitted"
    total = (
        len(embed["title"])
        + len(embed.get("description", ""))
        + len(embed["footer"]["text"])
        + sum(len(f["name"]) + len(f["value"]) for f in embed["fields"])
    )
    assert total <= 6000
    assert "url" not in embed


def test_description_is_clipped_to_4096(receiver: WebhookReceiver) -> None:
    assert make_notifier(receiver.webhook_url()).notify("Digest", "x" * 5000) is True

    description = receiver.requests[0].payload["embeds"][0]["description"]
    assert len(description) == 4096 and description.endswith("…")


def test_webhook_url_never_appears_in_logs(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = receiver.webhook_url()
    outcomes = []

    outcomes.append(make_notifier(url).notify("ok", "delivered"))
    receiver.fail_next(3, status=500)
    outcomes.append(make_notifier(url).notify("server error", "x"))
    receiver.fail_next(1, status=401)
    outcomes.append(make_notifier(url).notify("unauthorised", "x"))
    receiver.rate_limit_next(1, retry_after=0.05)
    receiver.rate_limit_next(1, retry_after=60)
    outcomes.append(make_notifier(url).notify("rate limited", "x"))
    receiver.hang_next(3, seconds=10)
    outcomes.append(make_notifier(url, timeout_s=0.1).notify("hang", "x"))
    outcomes.append(make_notifier(url.replace("http://", "ftp://")).notify("bad scheme", "x"))
    outcomes.append(make_notifier(url.replace("127.0.0.1", "[::bad")).notify("bad url", "x"))
    unreachable = closed_port_url()
    outcomes.append(make_notifier(unreachable, max_retries=0).notify("refused", "x"))

    assert outcomes == [True] + [False] * 7
    # httpx logged each request, so the redaction was exercised, not merely unneeded.
    assert any(r.name == "httpx" for r in caplog.records)
    assert len(warnings_in(caplog)) == 7
    logged = caplog.text + "".join(r.getMessage() + str(r.exc_text) for r in caplog.records)
    for secret in (url, receiver.token, unreachable, "closed-port-token-abcdefghijkl"):
        assert secret not in logged
    assert receiver.token not in repr(make_notifier(url))
    assert receiver.token not in str(make_notifier(url))


def test_resource_works_inside_dagster_with_env_var(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISCORD_WEBHOOK_URL", receiver.webhook_url())

    @dg.asset
    def announced(notifier: DiscordNotifier) -> bool:
        return notifier.notify("Materialized", "from a run", severity=Severity.SUCCESS)

    result = dg.materialize(
        [announced],
        resources={"notifier": DiscordNotifier(webhook_url=dg.EnvVar("DISCORD_WEBHOOK_URL"))},
    )

    assert result.output_for_node("announced") is True
    assert receiver.requests[0].payload["embeds"][0]["description"] == "from a run"
