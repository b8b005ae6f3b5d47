"""Log records as JSON lines, and secrets kept out of every format."""

from __future__ import annotations

import json
import logging

from qortex.logs import JsonFormatter, TextFormatter, redact, request_id


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("qortex.test", logging.WARNING, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_secrets_are_redacted() -> None:
    line = "key qx_AbCdEf0123456789_-xyz secret whsec_QUJD+/ZGVm== url /x?apiKey=s3cr3t&b=1"
    clean = redact(line)
    assert "AbCdEf" not in clean and "QUJD" not in clean and "s3cr3t" not in clean
    assert clean == "key qx_[redacted] secret whsec_[redacted] url /x?apiKey=[redacted]&b=1"


def test_a_json_line_has_the_fields_and_ids() -> None:
    token = request_id.set("req-1")
    try:
        text = JsonFormatter().format(
            _record("task %s done with qx_0123456789abcdef", "t1", task_id="t1", miner_id="m1")
        )
    finally:
        request_id.reset(token)
    line = json.loads(text)
    assert line["level"] == "warning" and line["logger"] == "qortex.test"
    assert line["message"] == "task t1 done with qx_[redacted]"
    assert (line["requestId"], line["taskId"], line["minerId"]) == ("req-1", "t1", "m1")
    assert line["time"].endswith("+00:00")


def test_text_lines_are_redacted_too() -> None:
    text = TextFormatter().format(_record("using whsec_abcdefgh12"))
    assert text.endswith("qortex.test: using whsec_[redacted]")
