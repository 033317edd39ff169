"""Re-encrypting stored chat ids under the newest key (`sns-telegram rotate-keys`).

After putting a new key first in CHAT_ID_ENCRYPTION_KEY (`new,old`) and rolling the services, run
this once: every chat id still under an older key (or stored in plain text) is re-encrypted with
the newest key and its lookup digest recomputed. Then the old key can be removed.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from services.common.chat_ids import ChatIdCipher, ChatIdError
from shared.db import libpq_url

_PAGE = """
SELECT user_id, chat_id FROM telegram_links
WHERE chat_id IS NOT NULL AND user_id > %s ORDER BY user_id LIMIT %s
"""
# Compare-and-set on the old value: a link changed meanwhile by the linker is left alone.
_UPDATE = """
UPDATE telegram_links SET chat_id = %s, chat_lookup = %s, updated_at = now()
WHERE user_id = %s AND chat_id = %s
"""


@dataclass
class RotationReport:
    """What a rotation did."""

    scanned: int = 0
    rotated: int = 0
    unreadable: int = 0

    def __str__(self) -> str:
        return (
            f"{self.scanned} chat ids checked, {self.rotated} re-encrypted with the newest key, "
            f"{self.unreadable} unreadable with the configured keys"
        )


def rotate_chat_ids(database_url: str, cipher: ChatIdCipher, page: int = 1000) -> RotationReport:
    """Re-encrypt every chat id that is not under the newest key (idempotent, resumable)."""
    if not cipher.encrypts:
        raise ChatIdError("CHAT_ID_ENCRYPTION_KEY is not set: there is no key to rotate to")
    report = RotationReport()
    last = ""
    with psycopg.connect(libpq_url(database_url)) as conn:
        while True:
            rows = conn.execute(_PAGE, (last, page)).fetchall()
            if not rows:
                return report
            updates = []
            for user_id, stored in rows:
                report.scanned += 1
                if not cipher.needs_rotation(stored):
                    continue
                try:
                    chat_id = cipher.decrypt(stored)
                except ChatIdError:
                    report.unreadable += 1
                    continue
                updates.append(
                    (cipher.encrypt(chat_id), cipher.lookup(chat_id)[0], user_id, stored)
                )
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(_UPDATE, updates)
            report.rotated += len(updates)
            last = rows[-1][0]
