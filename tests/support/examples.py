"""The specification's examples, as the tests use them: the moment its messages show and the
data of its events (`shared.contract.sample_data` is what `publish` sends; these are the seed's)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

AT = datetime(2026, 2, 26, 10, 30, tzinfo=UTC)
"""The moment of the specification's examples: ⏰ 2026-02-26 10:30:00 UTC."""

POST_SUCCESS: dict[str, Any] = {
    "platform": "instagram",
    "content": "Post content here...",
    "likes": 1234,
    "comments": 56,
    "post_url": "https://instagram.com/p/abc",
}
"""The specification's `post_success` data."""

POST_FAILURE: dict[str, Any] = {"platform": "instagram", "error": "Connection timeout"}
"""The specification's `post_failure` data."""

AUTOMATION_EXECUTED: dict[str, Any] = {
    "automation_name": "Daily Instagram Post",
    "platforms": ["instagram", "twitter"],
    "execution_time": "2026-02-26 10:30:00 UTC",
}
"""The specification's `automation_executed` data."""
