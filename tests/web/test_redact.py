"""No secret in any log line: the access log, our own lines, in message or arguments."""

from __future__ import annotations

import logging

import pytest

from qortex.web.redact import install, redact

KEY = "qx_s3cret-key-0123456789"


@pytest.mark.parametrize(
    ("line", "clean"),
    [
        (
            f"GET /api/v1/events?apiKey={KEY}&taskId=t",
            "GET /api/v1/events?apiKey=[redacted]&taskId=t",
        ),
        (f"/api/v1/events?taskId=t&APIKEY={KEY}", "/api/v1/events?taskId=t&APIKEY=[redacted]"),
        (f"x-api-key: {KEY}", "x-api-key: [redacted]"),
        ("GET /api/v1/tasks", "GET /api/v1/tasks"),
    ],
)
def test_redact(line: str, clean: str) -> None:
    assert redact(line) == clean


def test_every_record_is_redacted_in_message_and_arguments() -> None:
    records: list[logging.LogRecord] = []
    catch = logging.Handler()
    catch.emit = records.append  # type: ignore[method-assign]
    loggers = [logging.getLogger(name) for name in ("uvicorn.access", "qortex.test")]
    before = logging.getLogRecordFactory()
    levels = [logger.level for logger in loggers]
    try:
        install()
        install()  # twice is once
        for logger in loggers:
            logger.addHandler(catch)
            logger.setLevel(logging.INFO)
        loggers[0].info(
            '%s - "%s %s HTTP/%s" %d',
            "203.0.113.7:5000",
            "GET",
            f"/api/v1/events?apiKey={KEY}",
            "1.1",
            200,
        )
        loggers[1].info(f"a key in the message itself: apiKey={KEY}")
        lines = [record.getMessage() for record in records]
        assert len(lines) == 2 and not any(KEY in line for line in lines)
        assert all("[redacted]" in line for line in lines)
        assert records[0].args[2] == "/api/v1/events?apiKey=[redacted]"  # type: ignore[index]
    finally:
        logging.setLogRecordFactory(before)
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(catch)
            logger.setLevel(level)
