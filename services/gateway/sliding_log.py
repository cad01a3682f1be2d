"""The limiting algorithm: a sliding-window log, in Redis and in process memory.

Why a log. A policy promises "at most ``limit`` requests in any
``window_s`` seconds", and that is what RateLimit-Policy tells clients. A
fixed window admits up to twice the limit across a boundary; a sliding-window
counter estimates the previous window's share and can admit more than the
limit when traffic is uneven; GCRA (a token bucket) admits a full burst and
then keeps refilling, so up to ``2 * limit - 1`` requests fit in one window.
Only a log of admission times admits at most the limit in every window, and
kept as a Redis list (oldest first, at most ``limit`` entries in the window)
it costs O(1) per decision: drop entries that left the window from the head,
compare the length with the limit, push the new time on the tail. An entry
is an integer of microseconds, about 9 bytes in a listpack, so a caller at
the limit of a 600-per-minute policy holds ~5 KiB, and an idle key expires
after one window.

The script decides for every policy of a request at once: if any policy is
used up, nothing is recorded anywhere (a rejected request costs no budget),
else the same time is pushed onto every log. The clock is Redis's own
(``TIME``), so gateway processes with skewed clocks still share one
timeline. ``LocalLog`` is the same algorithm in memory, for when Redis
cannot be asked.

Both answer ``[blocked, wait_us, now_us, remaining_1, reset_us_1, ...]``:
``blocked`` is the 1-based index of the policy that refused (the one whose
budget comes back last), 0 when the request was admitted; ``wait_us`` is
how long until it would be admitted; per policy, ``remaining`` is what is
left after this request and ``reset_us`` how long until the oldest counted
request leaves the window (one more unit comes back).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local counts, oldest = {}, {}
local blocked, wait = 0, 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  local horizon = now - window
  local count = redis.call('LLEN', key)
  if count > 0 and tonumber(redis.call('LINDEX', key, -1)) <= horizon then
    redis.call('DEL', key)
    count = 0
  end
  local head = nil
  while count > 0 do
    head = tonumber(redis.call('LINDEX', key, 0))
    if head > horizon then break end
    redis.call('LPOP', key)
    count = count - 1
    head = nil
  end
  counts[i], oldest[i] = count, head
  if count >= limit then
    local frees = tonumber(redis.call('LINDEX', key, count - limit)) + window - now
    if blocked == 0 or frees > wait then blocked, wait = i, frees end
  end
end
local stamp = string.format('%d', now)
local reply = {blocked, wait, now}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  local count, head = counts[i], oldest[i]
  if blocked == 0 then
    redis.call('RPUSH', key, stamp)
    redis.call('PEXPIRE', key, math.ceil(window / 1000))
    count = count + 1
    if head == nil then head = now end
  end
  local reset = window
  if head ~= nil then reset = head + window - now end
  reply[2 * i + 2] = math.max(limit - count, 0)
  reply[2 * i + 3] = reset
end
return reply
"""
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()


class LocalLog:
    """The script's algorithm over logs in this process's memory.

    At most ``max_keys`` logs are kept; the least recently used goes first.
    """

    def __init__(
        self,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_keys = max_keys
        self._clock = clock
        self._logs: OrderedDict[str, deque[int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._logs)

    def decide(self, keys: Sequence[str], args: Sequence[int]) -> list[int]:
        """What the script answers for ``keys`` and ``args`` (limit, window_us)."""
        now = int(self._clock() * 1_000_000)
        logs: list[deque[int]] = []
        blocked = wait = 0
        for i, key in enumerate(keys):
            limit, window = args[2 * i], args[2 * i + 1]
            log = self._logs.get(key)
            if log is None:
                log = deque()
            horizon = now - window
            while log and log[0] <= horizon:
                log.popleft()
            logs.append(log)
            if len(log) >= limit:
                frees = log[len(log) - limit] + window - now
                if blocked == 0 or frees > wait:
                    blocked, wait = i + 1, frees
        reply = [blocked, wait, now]
        for i, key in enumerate(keys):
            limit, window = args[2 * i], args[2 * i + 1]
            log = logs[i]
            if blocked == 0:
                log.append(now)
            if log:
                self._logs[key] = log
                self._logs.move_to_end(key)
            else:
                self._logs.pop(key, None)
            reset = log[0] + window - now if log else window
            reply += [max(limit - len(log), 0), reset]
        while len(self._logs) > self.max_keys:
            self._logs.popitem(last=False)
        return reply

    def refund(self, keys: Sequence[str], stamp: int) -> None:
        """Take back the entries ``decide`` recorded at ``stamp``."""
        for key in keys:
            log = self._logs.get(key)
            if log is not None and stamp in log:
                log.remove(stamp)
