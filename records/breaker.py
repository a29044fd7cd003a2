"""A circuit breaker per source, kept in Redis so that every worker shares it: once a source has
failed (no connection, or no answer in time), the next patients skip it instead of each waiting
for its timeout. After a cool-off one trial request is let through (half-open); success closes
the breaker, failure opens it again."""

import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from django.conf import settings
from redis.driver_info import DriverInfo

# What redis-py tells the server about itself on each new connection (CLIENT SETINFO), made once:
# left to itself it reads the installed package's metadata again for every connection (~4 ms of
# CPU each, and a population run opens a pool of its own).
_DRIVER_INFO = DriverInfo()


def breaker_key(source_id: int) -> str:
    # Per database, so two deployments (or test databases) on one Redis never share a breaker.
    return f"mdt:{settings.DATABASES['default']['NAME']}:breaker:{source_id}"


@dataclass(frozen=True)
class BreakerState:
    open: bool
    since: float | None = None  # epoch seconds when it opened
    # False when the source had no failures on record: a success then has nothing to clear.
    recorded: bool = True


class CircuitBreaker:
    def __init__(
        self,
        client: aioredis.Redis | None = None,
        *,
        failures_to_open: int | None = None,
        cool_off_s: float | None = None,
    ):
        # A blocking pool: a run asks about many patients at once, and every ask checks the
        # breaker; waiting briefly for a connection beats failing the whole run (redis-py's
        # default pool raises MaxConnectionsError when it runs out).
        self.redis = client or aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(
                settings.REDIS_URL, max_connections=32, timeout=10, driver_info=_DRIVER_INFO
            )
        )
        self.failures_to_open = failures_to_open or settings.FEDERATION_BREAKER_FAILURES
        self.cool_off_s = (
            cool_off_s if cool_off_s is not None else settings.FEDERATION_BREAKER_COOL_OFF_S
        )

    async def check(self, source_id: int) -> BreakerState:
        """Open means: do not ask. One caller after the cool-off gets a trial (half-open)."""
        (state,) = await self.check_all([source_id])
        return state

    async def check_all(self, source_ids: list[int]) -> list[BreakerState]:
        """check() for several sources, their states read in one round trip to Redis."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for source_id in source_ids:
                pipe.hmget(breaker_key(source_id), "opened_at", "retry_at", "failures")
            found = await pipe.execute()
        return [
            await self._state(source_id, *fields)
            for source_id, fields in zip(source_ids, found, strict=True)
        ]

    async def _state(self, source_id: int, opened_at, retry_at, failures) -> BreakerState:
        if opened_at is None:
            return BreakerState(open=False, recorded=failures is not None)
        key = breaker_key(source_id)
        now = time.time()
        if retry_at is not None and now >= float(retry_at):
            # Only one caller wins the trial: it pushes retry_at forward for everyone else.
            won = await self.redis.hsetnx(key, f"trial:{retry_at.decode()}", "1")
            if won:
                await self.redis.hset(key, "retry_at", now + self.cool_off_s)
                return BreakerState(open=False, since=float(opened_at))
        return BreakerState(open=True, since=float(opened_at))

    async def failed(self, source_id: int) -> None:
        key = breaker_key(source_id)
        failures = await self.redis.hincrby(key, "failures", 1)
        if failures >= self.failures_to_open:
            now = time.time()
            await self.redis.hsetnx(key, "opened_at", now)
            await self.redis.hset(key, "retry_at", now + self.cool_off_s)
        await self.redis.expire(key, 24 * 3600)

    async def succeeded(self, source_id: int) -> None:
        await self.redis.delete(breaker_key(source_id))

    async def reset(self, source_id: int) -> None:
        await self.succeeded(source_id)

    async def close(self) -> None:
        await self.redis.aclose(close_connection_pool=True)
