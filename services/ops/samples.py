"""Sample `data` per event type, matching the specification's `send_sns_notification` examples.

Used by `sns-telegram publish` (when no --data is given) and as the AsyncAPI message examples.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from shared.contract import EventType


def sample_data(event_type: EventType, today: date) -> dict[str, Any]:
    """A valid `data` payload for `event_type`; `today` is the daily summary's day."""
    samples: dict[EventType, dict[str, Any]] = {
        EventType.POST_SUCCESS: {
            "platform": "instagram",
            "content": "Post content here...",
            "likes": 1234,
            "comments": 56,
            "post_url": "https://instagram.com/p/sample",
        },
        EventType.POST_FAILURE: {"platform": "instagram", "error": "Connection timeout"},
        EventType.AUTOMATION_EXECUTED: {
            "automation_name": "Daily Instagram Post",
            "platforms": ["instagram", "twitter"],
            "execution_time": "2026-02-26 10:30:00 UTC",
        },
        EventType.DAILY_SUMMARY: {
            "date": today.isoformat(),
            "timezone": "UTC",
            "total_posts": 5,
            "successful_posts": 5,
            "failed_posts": 0,
            "total_engagement": 2345,
            "platforms": {
                "instagram": {"posts": 3, "engagement": 1234},
                "twitter": {"posts": 2, "engagement": 1111},
            },
        },
        EventType.POST_METRICS_UPDATED: {
            "post_id": "sample-post-1",
            "platform": "instagram",
            "likes": 1500,
            "comments": 80,
        },
        EventType.POST_RETRY_REQUESTED: {
            "original_event_id": "7b0c2f0e-2c7e-4a53-9a55-3f1d6c0f9a10",
            "platform": "instagram",
            "error": "Connection timeout",
            "post_id": "sample-post-1",
        },
        EventType.TELEGRAM_LINKED: {"chat_type": "private"},
        EventType.TELEGRAM_UNLINKED: {"chat_type": "private"},
        EventType.TELEGRAM_BLOCKED: {
            "reason": "Forbidden: bot was blocked by the user",
            "error_code": 403,
        },
        EventType.TELEGRAM_CHAT_MIGRATED: {"new_chat_id": -1001234567890},
    }
    return samples[event_type]
