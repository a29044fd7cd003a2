"""The circuit breaker, on the real Redis (a test key space)."""

import asyncio

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from records.breaker import CircuitBreaker


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.fixture
def breaker_factory():
    made = []

    def make(**kwargs):
        breaker = CircuitBreaker(aioredis.from_url(settings.REDIS_URL), **kwargs)
        made.append(breaker)
        return breaker

    return make


SOURCE = 987_654  # an id no real source has


async def _reset(breaker):
    await breaker.reset(SOURCE)


def test_breaker_opens_after_failures_and_lets_one_trial_through_after_cool_off(breaker_factory):
    async def scenario():
        breaker = breaker_factory(failures_to_open=2, cool_off_s=0.2)
        await breaker.reset(SOURCE)
        assert not (await breaker.check(SOURCE)).open
        await breaker.failed(SOURCE)
        assert not (await breaker.check(SOURCE)).open  # one failure is not enough
        await breaker.failed(SOURCE)
        state = await breaker.check(SOURCE)
        assert state.open
        assert state.since is not None
        await asyncio.sleep(0.25)
        trials = [await breaker.check(SOURCE) for _ in range(3)]
        assert [t.open for t in trials] == [False, True, True]  # exactly one trial
        await breaker.succeeded(SOURCE)
        assert not (await breaker.check(SOURCE)).open
        await breaker.close()

    run(scenario())


def test_breaker_state_is_shared_between_workers(breaker_factory):
    async def scenario():
        first = breaker_factory(failures_to_open=1, cool_off_s=30)
        second = breaker_factory(failures_to_open=1, cool_off_s=30)
        await first.reset(SOURCE)
        await first.failed(SOURCE)
        assert (await second.check(SOURCE)).open
        await second.reset(SOURCE)
        await first.close()
        await second.close()

    run(scenario())


def test_check_all_reads_every_sources_state_in_one_call(breaker_factory):
    other = SOURCE + 1

    async def scenario():
        breaker = breaker_factory(failures_to_open=1, cool_off_s=30)
        await breaker.reset(SOURCE)
        await breaker.reset(other)
        await breaker.failed(SOURCE)
        opened, closed = await breaker.check_all([SOURCE, other])
        assert opened.open and opened.since is not None
        assert not closed.open
        assert not closed.recorded  # nothing on record: a success has nothing to clear
        assert await breaker.check_all([]) == []
        await breaker.reset(SOURCE)
        await breaker.close()

    run(scenario())


def test_a_failure_below_the_threshold_is_on_record_until_a_success_clears_it(breaker_factory):
    async def scenario():
        breaker = breaker_factory(failures_to_open=2, cool_off_s=30)
        await breaker.reset(SOURCE)
        await breaker.failed(SOURCE)
        state = await breaker.check(SOURCE)
        assert not state.open and state.recorded
        await breaker.succeeded(SOURCE)
        assert not (await breaker.check(SOURCE)).recorded
        await breaker.close()

    run(scenario())
