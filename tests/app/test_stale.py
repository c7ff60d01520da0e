"""app.stale.Generation: the latest request wins (no Qt needed)."""

from __future__ import annotations

import asyncio

from app.stale import Generation, Token


def test_a_newer_request_makes_older_tokens_stale() -> None:
    gen = Generation()
    first = gen.next()
    assert gen.is_current(first)
    second = gen.next()
    assert not gen.is_current(first)
    assert gen.is_current(second)
    assert gen.token == second


def test_invalidate_drops_every_outstanding_token_without_a_new_one() -> None:
    gen = Generation()
    token = gen.next()
    gen.invalidate()
    assert not gen.is_current(token)
    assert gen.is_current(gen.token)  # a follow-up of the new generation is current
    assert gen.token != token


def test_a_fresh_counter_knows_no_request_yet() -> None:
    gen = Generation()
    assert gen.is_current(gen.token)
    assert not gen.is_current(Token(gen.next() + 1))  # a token it never gave is not current


def test_counters_are_independent() -> None:
    lists, details = Generation(), Generation()
    token = lists.next()
    details.next()
    details.invalidate()
    assert lists.is_current(token)


async def test_only_the_latest_of_overlapping_answers_is_kept() -> None:
    gen = Generation()
    shown: list[str] = []
    first_may_answer = asyncio.Event()

    async def request(name: str, wait: asyncio.Event | None) -> None:
        token = gen.next()
        if wait is not None:
            await wait.wait()
        if gen.is_current(token):
            shown.append(name)

    slow = asyncio.create_task(request("slow", first_may_answer))
    await asyncio.sleep(0)  # the slow request has taken its token
    await request("fast", None)
    first_may_answer.set()
    await slow
    assert shown == ["fast"]
