"""A locked write transaction, retried when a concurrent writer won the race."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from podium.errors import Conflict

__all__ = ["locked_write"]

logger = logging.getLogger(__name__)
R = TypeVar("R")
RETRIES = 50


def locked_write(engine: Engine, fn: Callable[[Connection], R], *, what: str) -> R:
    """Run ``fn`` in one transaction; on SQLite take the write lock first (``BEGIN IMMEDIATE``)
    so what it reads (a latest version number, a label's target) is what it writes over.
    Unique-key races and lock timeouts are retried with jitter; after ``RETRIES`` tries the
    caller gets a 409 naming ``what``."""
    for attempt in range(RETRIES):
        try:
            with engine.connect() as conn:
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
                return result
        except (IntegrityError, OperationalError) as e:
            if attempt == RETRIES - 1:
                raise Conflict(f"{what} is being changed by several writers at once; retry in a moment") from e
            logger.debug("write conflict on %s (attempt %d): %s", what, attempt + 1, e.__class__.__name__)
            time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
    raise AssertionError("unreachable")  # pragma: no cover
