"""to_jsonable: every value becomes JSON, nothing raises."""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from podium.sdk.ids import new_span_id, new_trace_id
from podium.sdk.serialize import MAX_DEPTH, Encoder, iso_from_ns, to_jsonable, truncate


class Color(Enum):
    RED = "red"


class Item(BaseModel):
    name: str
    when: datetime


@dataclass
class Point:
    x: int
    tags: tuple[str, ...]


def roundtrip(value: Any) -> Any:
    out = to_jsonable(value)
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    return out


def test_scalars_and_containers() -> None:
    assert roundtrip(None) is None
    assert roundtrip([True, 1, 1.5, "s"]) == [True, 1, 1.5, "s"]
    assert roundtrip((1, 2)) == [1, 2]
    assert sorted(roundtrip({3, 1, 2})) == [1, 2, 3]
    assert roundtrip(frozenset()) == []
    assert roundtrip(deque([1])) == [1]
    assert roundtrip({1: "a", None: "b", Color.RED: "c", (1, 2): "d"}) == {
        "1": "a",
        "None": "b",
        "red": "c",
        "(1, 2)": "d",
    }
    assert roundtrip([math.nan, math.inf, -math.inf]) == ["NaN", "Infinity", "-Infinity"]


def test_rich_types() -> None:
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert roundtrip(when) == "2024-05-01T12:00:00+00:00"
    assert roundtrip(date(2024, 5, 1)) == "2024-05-01"
    assert roundtrip(time(1, 2)) == "01:02:00"
    assert roundtrip(timedelta(seconds=1.5)) == 1.5
    assert roundtrip(b"\x00" * 10) == "<bytes len=10>"
    assert roundtrip(bytearray(3)) == "<bytes len=3>"
    assert roundtrip(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert roundtrip(Decimal("1.10")) == "1.10"
    assert roundtrip(Path("/tmp/x")) == "/tmp/x"
    assert roundtrip(Color.RED) == "red"
    assert roundtrip(Item(name="n", when=when)) == {"name": "n", "when": "2024-05-01T12:00:00+00:00"}
    assert roundtrip(Point(1, ("a",))) == {"x": 1, "tags": ["a"]}
    assert roundtrip(ValueError("bad")) == "ValueError: bad"
    assert roundtrip(object()).startswith("<object object at")


def test_cycles_depth_and_hostile_objects() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    assert roundtrip(loop) == [1, "<cycle>"]
    d: dict[str, Any] = {}
    d["self"] = d
    assert roundtrip(d) == {"self": "<cycle>"}
    shared = [1]
    assert roundtrip([shared, shared]) == [[1], [1]]  # shared, not a cycle

    deep: list[Any] = []
    cur = deep
    for _ in range(MAX_DEPTH + 10):
        nxt: list[Any] = []
        cur.append(nxt)
        cur = nxt
    text = json.dumps(roundtrip(deep))
    assert "<max depth>" in text

    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert roundtrip(Hostile()) == "<unserializable Hostile: RuntimeError>"

    @dataclass
    class Node:
        child: Any = None

    node = Node()
    node.child = node
    assert roundtrip(node) == {"child": "<cycle>"}


def test_truncation() -> None:
    assert truncate("abc", 10) == "abc"
    cut = truncate("x" * 200, 100)
    assert len(cut) == 100 and cut.endswith("…[truncated, 200 chars]")
    assert to_jsonable({"k": "y" * 300}, max_chars=100)["k"].endswith("…[truncated, 300 chars]")
    assert len(to_jsonable(["z" * 10_000], max_chars=500)[0]) == 500


def test_encoder_mask_gets_json_values() -> None:
    seen: list[Any] = []

    def mask(value: Any) -> Any:
        seen.append(value)
        return {"masked": Point(1, ())}  # the result is serialized too

    enc = Encoder(mask=mask)
    assert enc.masked({"when": datetime(2024, 1, 1, tzinfo=UTC)}) == {"masked": {"x": 1, "tags": []}}
    assert seen == [{"when": "2024-01-01T00:00:00+00:00"}]
    assert enc.plain({"a": b"x"}) == {"a": "<bytes len=1>"}
    assert enc.masked(None) is None


def test_iso_from_ns_and_ids() -> None:
    assert iso_from_ns(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456+00:00"
    assert len(new_trace_id()) == 32 and len(new_span_id()) == 16
    assert len({new_span_id() for _ in range(1000)}) == 1000
