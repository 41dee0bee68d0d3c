"""Rate-limited warnings: a flood of bad input (or of failing writes) costs a few log lines, not one each."""

from __future__ import annotations

import logging
import time
from typing import Any


class LogLimiter:
    """At most one line per key per interval; the next line says how many were suppressed meanwhile.

    A traceback (exc_info) is attached only to the lines that are written, so even a failure that repeats
    for every message leaves one traceback per interval."""

    def __init__(self, logger: logging.Logger, interval: float = 5.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warn(self, key: str, msg: str, *args: Any, exc_info: BaseException | bool | None = None) -> bool:
        """Log `msg % args` unless `key` was logged less than `interval` ago; returns whether it logged."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        suppressed = self._suppressed.pop(key, 0)
        suffix = f" ({suppressed} more like it suppressed)" if suppressed else ""
        self.logger.warning(msg + suffix, *args, exc_info=exc_info, stacklevel=2)
        self._last[key] = now
        return True
