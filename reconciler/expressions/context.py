"""What an evaluation may look at (:class:`Context`); below the function registry and the evaluator, which both
take it."""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reconciler.expressions.values import Value


def _no_attributes(name: str) -> Value:
    return None


@dataclass(frozen=True)
class Context:
    """What an evaluation may look at: the object's attributes, and the sources of Now, Guid and RandomString.

    ``taken`` answers SelectUniqueValue's question "is this value already used in the target?".
    """

    attributes: Callable[[str], Value] = _no_attributes
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    random: random.Random = field(default_factory=secrets.SystemRandom)
    taken: Callable[[Value], bool] = field(default=lambda value: False)
