"""The budget in Redis (REDIS_URL): shared by every process on every host.

Each call is a Lua script run by EVALSHA: Redis runs a script alone, so the read-modify-write
of `gcra.reserve` is atomic without a lock, in one round trip, on the server's clock (`TIME`,
allowed in scripts since Redis 5 replicates their effects). A provider is one hash; every key
carries the prefix in braces, so that on a Redis Cluster a provider's hash and the list of
providers live in the same slot. Numbers go back and forth as "%.17g" strings: Redis would
truncate a Lua number to an integer, and Lua's own tostring keeps 14 digits, 0.1 ms of an epoch.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from volaris_assets.providers.budget.gcra import Cell, Grant, Limit
from volaris_assets.providers.budget.store import Stored

_NOW = """
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local function number(value) return string.format('%.17g', value) end
"""
# gcra.reserve and gcra.count in Lua. ARGV: interval, head_start, max_wait ('' for none),
# rate, burst, provider.
_RESERVE = (
    _NOW
    + """
local interval, head_start = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local cell = redis.call('HMGET', KEYS[1], 'tat', 'paused_until', 'minute', 'reserved',
                        'reserved_before')
local tat, paused_until = tonumber(cell[1]) or 0, tonumber(cell[2]) or 0
local minute, reserved = tonumber(cell[3]) or 0, tonumber(cell[4]) or 0
local reserved_before = tonumber(cell[5]) or 0
local start = math.max(tat, now, paused_until + head_start)
local wait = math.max(0, start - now - head_start)
if max_wait and wait > max_wait then
    return {0, number(wait - max_wait), number(now + wait - max_wait)}
end
local this_minute = math.floor(now / 60)
if this_minute ~= minute then
    if this_minute == minute + 1 then reserved_before = reserved else reserved_before = 0 end
    reserved = 0
end
redis.call('HSET', KEYS[1], 'tat', number(start + interval), 'paused_until', number(paused_until),
           'minute', this_minute, 'reserved', reserved + 1, 'reserved_before', reserved_before,
           'rate', ARGV[4], 'burst', ARGV[5], 'updated_at', number(now))
redis.call('SADD', KEYS[2], ARGV[6])
return {1, number(wait), number(now + wait)}
"""
)
# ARGV: seconds, provider.
_PAUSE = (
    _NOW
    + """
local paused_until = math.max(tonumber(redis.call('HGET', KEYS[1], 'paused_until')) or 0,
                              now + tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'paused_until', number(paused_until), 'updated_at', number(now))
redis.call('SADD', KEYS[2], ARGV[2])
return number(paused_until)
"""
)
_FIELDS = ("rate", "burst", "tat", "paused_until", "minute", "reserved", "reserved_before")


class RedisStore:
    """The budget under the key prefix `prefix` in the Redis at `url` (a REDIS_URL).

    A call that meets a connection error or no answer within `timeout_s` is tried once more on
    a fresh connection: a Redis restart costs a retry rather than a fallback, and a Redis that
    does not answer at all costs 2 * `timeout_s` before the fallback. `where` names host, port
    and database number, never the password.
    """

    kind = "redis"

    def __init__(self, url: str, *, prefix: str = "volaris-budget", timeout_s: float = 2.0) -> None:
        parts = urlsplit(url)
        self.where = f"{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"
        self._client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1),
        )
        self._prefix = f"{{{prefix}}}"
        self._reserve = self._client.register_script(_RESERVE)
        self._pause = self._client.register_script(_PAUSE)

    def reserve(self, provider: str, limit: Limit, max_wait: float | None) -> Grant:
        args = [
            repr(limit.interval),
            repr(limit.head_start),
            "" if max_wait is None else repr(max_wait),
            repr(limit.rate),
            repr(limit.burst),
            provider,
        ]
        admitted, wait, due = self._reserve(keys=self._keys(provider), args=args)
        return Grant(admitted=bool(admitted), wait=float(wait), due=float(due))

    def pause(self, provider: str, seconds: float) -> float:
        return float(self._pause(keys=self._keys(provider), args=[repr(seconds), provider]))

    def paused_until(self, provider: str) -> float:
        return float(self._client.hget(self._keys(provider)[0], "paused_until") or 0.0)

    def cells(self) -> tuple[float, list[Stored]]:
        providers = sorted(p.decode() for p in self._client.smembers(self._keys("")[1]))
        pipeline = self._client.pipeline(transaction=False)
        pipeline.time()
        for provider in providers:
            pipeline.hmget(self._keys(provider)[0], _FIELDS)
        (seconds, microseconds), *hashes = pipeline.execute()
        found = []
        for provider, values in zip(providers, hashes, strict=True):
            rate, burst, tat, paused_until, minute, reserved, reserved_before = (
                float(v) if v is not None else None for v in values
            )
            found.append(
                Stored(
                    provider,
                    Limit(rate, burst or 1.0) if rate is not None else None,
                    Cell(
                        tat or 0.0,
                        paused_until or 0.0,
                        int(minute or 0),
                        int(reserved or 0),
                        int(reserved_before or 0),
                    ),
                )
            )
        return seconds + microseconds / 1e6, found

    def close(self) -> None:
        self._client.close()

    def _keys(self, provider: str) -> list[str]:
        """The provider's hash and the set of every provider's name."""
        return [f"{self._prefix}:provider:{provider}", f"{self._prefix}:providers"]
