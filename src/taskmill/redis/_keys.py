"""Key names: one hash tag per queue, so a queue lives in one Redis Cluster slot.

For prefix ``tm`` and queue ``q`` (see docs/redis.md, "Key layout")::

    tm:{q}:d          hash    task id -> record (the only per-task field)
    tm:{q}:r:<prio>   list    ready ids of one priority, FIFO
    tm:{q}:p          zset    priorities that have ready ids (score = priority)
    tm:{q}:s          zset    scheduled and retrying ids by due time (ms)
    tm:{q}:l          zset    running ids by lease expiry (ms, Redis clock)
    tm:{q}:f          zset    finished ids by finish time (results TTL, purge)
    tm:{q}:x          zset    dead letters by time
    tm:{q}:u:<key>    string  unique key -> task id
    tm:{q}:n / :i     hash    task name <-> small name id
    tm:{q}:k          hash    counts per status code
    tm:{q}:c          string  fencing token counter
    tm:{q}:g          list    wake-up signal for idle workers
    tm:{q}:o / :b     hash    queue limits / rate-limit bucket (tokens, time)
    tm:{q}:w:<id>     channel completion notification
    tm:queues         set     known queue names;   tm:epoch  string  epoch marker
"""

from __future__ import annotations

from typing import Final

from taskmill._errors import ConfigurationError

__all__ = ["MAX_NAME", "Keys", "check_queue", "check_text"]

MAX_NAME: Final = 512


def check_text(value: object, what: str, *, limit: int = MAX_NAME) -> str:
    """Return ``value`` if it is a non-empty string of at most ``limit`` characters."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > limit:
        raise ConfigurationError(f"{what} is longer than {limit} characters")
    return value


def check_queue(queue: object) -> str:
    """Return a valid queue name (braces would break the hash tag)."""
    name = check_text(queue, "queue name", limit=200)
    if "{" in name or "}" in name:
        raise ConfigurationError(f"queue name must not contain '{{' or '}}': {name!r}")
    return name


class Keys:
    """Builds key names under one prefix."""

    __slots__ = ("epoch", "prefix", "queues")

    def __init__(self, prefix: str) -> None:
        self.prefix = check_text(prefix, "prefix", limit=64)
        self.queues = f"{prefix}:queues"
        self.epoch = f"{prefix}:epoch"

    def base(self, queue: str) -> str:
        """Return the queue's key prefix, e.g. ``tm:{default}:``."""
        return f"{self.prefix}:{{{queue}}}:"

    def records(self, queue: str) -> str:
        """Return the queue's record hash (``KEYS[1]`` of every script)."""
        return self.base(queue) + "d"

    def limits(self, queue: str) -> str:
        """Return the queue's limits hash (see :mod:`._limits`)."""
        return self.base(queue) + "o"

    def signal(self, queue: str) -> str:
        """Return the queue's wake-up list."""
        return self.base(queue) + "g"

    def channel(self, queue: str, task_id: str) -> str:
        """Return the completion channel of one task."""
        return f"{self.base(queue)}w:{task_id}"
