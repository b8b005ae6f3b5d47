"""Request bodies a client, or a fuzzer's first requests, can send as they are.

The OpenAPI document shows them beside each request struct's schema, and the
fuzz tests (``tests/web/test_openapi.py``) start from them.
"""

from __future__ import annotations

from typing import Any

RFC8032_KEY = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"

EXAMPLES: dict[str, dict[str, Any]] = {
    "TaskRequest": {
        "sentiment": {"value": {"tweets": ["I love this", "This is awful"]}},
        "checked": {
            "value": {
                "kind": "sentiment",
                "input": {"tweets": ["I love this"]},
                "targetError": 0.0001,
                "gold": [{"input": "I hate this", "output": "negative"}],
            }
        },
        "matmul": {
            "value": {
                "kind": "matmul",
                "input": {"a": [[1, 2], [3, 4]], "b": [[5, 6], [7, 8]]},
                "replicas": 3,
                "deadlineSeconds": 600,
            }
        },
        "scheduled": {"value": {"tweets": ["good morning"], "delaySeconds": 60}},
    },
    "KeyRequest": {"reader": {"value": {"name": "dashboard", "scopes": ["read"]}}},
    "WebhookRequest": {
        "completed": {
            "value": {"url": "https://hooks.example.invalid/qortex", "events": ["task.completed"]}
        }
    },
    "Registration": {
        "miner": {"value": {"publicKey": RFC8032_KEY, "name": "laptop", "kinds": ["sentiment"]}}
    },
    "MinerStatusChange": {
        "ban": {"value": {"status": "banned", "note": "returned wrong labels"}},
        "verify": {"value": {"status": "verified", "note": "my own desktop"}},
    },
    "SignedResult": {
        "result": {
            "value": {
                "assignmentId": "5f0c3a9e1b2d4c6e8a7f9b10",
                "microtaskId": "3f0c0d4e-0000-4000-8000-000000000000:0",
                "output": '"positive"',
                "signature": "00" * 64,
            }
        }
    },
}
