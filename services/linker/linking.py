"""Linking a user to a chat: issue a link token, redeem it by `/start TOKEN` in a chat, or for a
trusted bot that runs elsewhere (verify-link: claim, confirm in the chat, then link)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from prometheus_client import Counter

from services.common.logging import mask_chat_id
from services.linker import texts
from services.linker.errors import RateLimited, TelegramRefused, TokenRefused
from services.linker.ports import BotUsername, SendRefused
from services.linker.tokens import TokenProblem, hash_token, is_well_formed, linking_url, new_token
from services.linker.usecase import UseCase, log
from shared.contract import EventType

LINKS = Counter("linker_link_attempts_total", "Link token redemptions", ["via", "outcome"])

LINK_TOKENS_PER_MINUTE = 10
"""Each request stores a token; the limit bounds what one account can make the table hold."""


@dataclass(frozen=True)
class IssuedLink:
    """A fresh link token and the deep link that carries it."""

    token: str
    linking_url: str
    bot_username: str
    expires_at: datetime


class ChatOutcome(StrEnum):
    """What `/start TOKEN` did in a chat."""

    LINKED = "linked"
    ALREADY_LINKED = "already_linked"
    REFUSED = "refused"


class Linking(UseCase):
    """Tokens and their redemption."""

    bot_username: BotUsername
    token_ttl: timedelta

    async def issue_link(self, user_id: str) -> IssuedLink:
        """A new single-use link token for `user_id` (earlier unused ones stop working)."""
        now = self.clock()
        decision = await self.store.take_rate_slot(
            f"link_token:{user_id}", now, limit=LINK_TOKENS_PER_MINUTE, period=timedelta(minutes=1)
        )
        if not decision.allowed:
            raise RateLimited(
                f"at most {LINK_TOKENS_PER_MINUTE} linking URLs per minute", decision.retry_after
            )
        username = await self.bot_username()  # raises BotUnavailable
        token = new_token()
        expires_at = now + self.token_ttl
        await self.store.issue_token(user_id, hash_token(token), now, expires_at)
        log.info("link token issued", extra={"user_id": user_id})
        return IssuedLink(token, linking_url(username, token), username, expires_at)

    async def redeem_in_chat(
        self, token: str, chat_id: int, chat_type: str | None, thread: int | None = None
    ) -> tuple[ChatOutcome, TokenProblem | None]:
        """`/start TOKEN` in a chat (in forum topic `thread`, if any): link the token's user to
        it, or say why not."""
        if not is_well_formed(token):
            LINKS.labels("bot", TokenProblem.NOT_FOUND.value).inc()
            return ChatOutcome.REFUSED, TokenProblem.NOT_FOUND
        chat = self._stored_chat(chat_id, chat_type, thread)
        result = await self.store.redeem(hash_token(token), chat, self.clock())
        if result.problem is None and result.user_id is not None:
            LINKS.labels("bot", "linked").inc()
            await self._linked(result.user_id, chat_id, chat.chat_type)
            return ChatOutcome.LINKED, None
        LINKS.labels("bot", str(result.problem)).inc()
        if result.problem is TokenProblem.USED and result.user_id is not None:
            # Telegram may deliver the same /start twice; the second one is not an error.
            link = await self.store.get_link(result.user_id)
            if link is not None and link.chat_lookup in self.cipher.lookup(chat_id):
                return ChatOutcome.ALREADY_LINKED, None
        return ChatOutcome.REFUSED, result.problem

    async def verify_link(
        self, token: str, chat_id: int, chat_type: str | None = None, *, user_id: str | None = None
    ) -> str:
        """Redeem `token` for `chat_id` on behalf of a trusted bot that runs elsewhere; returns
        the token's user. With `user_id` (the caller's JWT) the token must be that user's.

        Claim, confirm, link: the token is claimed in one short transaction (of any number of
        concurrent calls, one wins; the others get `TokenRefused(USED)`), then the chat gets the
        confirmation, then the link is written. A chat Telegram refuses links nothing: the claim
        is released, so the token works again, and an earlier link stays as it was.
        """
        if not is_well_formed(token):
            raise TokenRefused(TokenProblem.NOT_FOUND)
        token_hash = hash_token(token)
        claimed_at = self.clock()
        claim = await self.store.claim(token_hash, claimed_at, user_id)
        if claim.problem is not None or claim.user_id is None:
            problem = claim.problem or TokenProblem.NOT_FOUND
            LINKS.labels("api", problem.value).inc()
            raise TokenRefused(problem)
        try:
            delivered_to = await self._deliver(chat_id, texts.LINKED)
        except SendRefused as exc:
            await self.store.release(token_hash, claimed_at)
            LINKS.labels("api", "telegram_refused").inc()
            raise TelegramRefused(exc.reason, exc.retry_after) from None
        except BaseException:
            # Cancelled or failed without an answer: the token must not stay spent unlinked.
            await asyncio.shield(self.store.release(token_hash, claimed_at))
            raise
        if delivered_to != chat_id:
            chat_id, chat_type = delivered_to, "supergroup"
        chat = self._stored_chat(chat_id, chat_type)
        await self.store.link(claim.user_id, chat, self.clock())
        LINKS.labels("api", "linked").inc()
        await self._linked(claim.user_id, chat_id, chat.chat_type)
        return claim.user_id

    async def _linked(self, user_id: str, chat_id: int, chat_type: str | None) -> None:
        log.info("telegram linked", extra={"user_id": user_id, "chat": mask_chat_id(chat_id)})
        await self._announce(EventType.TELEGRAM_LINKED, user_id, chat_type)
