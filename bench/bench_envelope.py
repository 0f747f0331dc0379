"""Encode/decode throughput of taskmill payloads: JSON vs msgpack, signed vs unsigned.

Run: ``.venv/bin/python bench/bench_envelope.py [--iterations 20000] [--repeat 5]``

Every case runs in one process, in the same run. Baselines: a bare ``msgspec`` encode
and typed decode of the same envelope (what the codec costs on top of the
serializer), and stdlib ``json.dumps``/``json.loads`` of the same document. Two
payloads: a *small* task (3 annotated args: str, datetime, int) and a *medium* one
(a list of 100 small dicts, unannotated). Reports operations per second (best of
``--repeat``) and the codec's overhead over bare msgspec.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import msgspec

import taskmill as tm
from taskmill.payloads import Envelope, JsonSerializer, MsgpackSerializer, PayloadCodec, Signer

registry = tm.TaskRegistry()


@registry.task(name="bench.small")
async def small(to: str, when: dt.datetime, count: int) -> None:
    return None


@registry.task(name="bench.medium")
async def medium(rows: list[Any]) -> None:
    return None


WHEN = dt.datetime(2030, 1, 1, 9, 30, tzinfo=dt.UTC)
ROWS = [{"id": i, "name": f"row-{i}", "score": i / 3, "tags": ["a", "b"]} for i in range(100)]
SIGNER = Signer(keys={"k1": b"k" * 32}, current="k1")


def _best(fn: Callable[[], object], iterations: int, repeat: int) -> float:
    """Return the best operations per second of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(iterations):
            fn()
        best = min(best, time.perf_counter() - start)
    return iterations / best


def _cases(size: str) -> list[tuple[str, Callable[[], object]]]:
    args, task = _args(size), f"bench.{size}"
    cases: list[tuple[str, Callable[[], object]]] = []
    plain = PayloadCodec(registry).build(task, args)
    wire_doc = msgspec.to_builtins(plain)
    for fmt, serializer, mod in (
        ("json", JsonSerializer(), msgspec.json),
        ("msgpack", MsgpackSerializer(), msgspec.msgpack),
    ):
        for signer in (None, SIGNER):
            codec = PayloadCodec(registry, serializer=serializer, signer=signer)
            envelope = codec.build(task, args)
            data = codec.encode(envelope)
            label = f"{fmt}{'+hmac' if signer else ''}"
            cases.append((f"codec {label} encode", partial(codec.encode, envelope)))
            cases.append((f"codec {label} decode", partial(codec.decode, data)))
        encoder, decoder = mod.Encoder(), mod.Decoder(Envelope)
        raw = encoder.encode(wire_doc)
        cases.append((f"bare msgspec {fmt} encode", partial(encoder.encode, wire_doc)))
        cases.append((f"bare msgspec {fmt} decode", partial(decoder.decode, raw)))
    text = json.dumps(wire_doc)
    cases.append(("stdlib json dumps", partial(json.dumps, wire_doc)))
    cases.append(("stdlib json loads", partial(json.loads, text)))
    return cases


def _args(size: str) -> tuple[Any, ...]:
    return ("a@example.com", WHEN, 3) if size == "small" else (ROWS,)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    for size in ("small", "medium"):
        iterations = options.iterations if size == "small" else max(options.iterations // 20, 1)
        results = {name: _best(fn, iterations, options.repeat) for name, fn in _cases(size)}
        sizes = [
            len(codec.encode(codec.build(f"bench.{size}", _args(size))))
            for codec in (
                PayloadCodec(registry),
                PayloadCodec(registry, serializer=MsgpackSerializer()),
            )
        ]
        print(f"\n{size} payload: {sizes[0]} bytes JSON, {sizes[1]} bytes msgpack; ", end="")
        print(f"{iterations} ops, best of {options.repeat}")
        print(f"{'case':32} {'ops/s':>12} {'us/op':>8} {'vs bare msgspec':>16}")
        for name, ops in results.items():
            fmt = "msgpack" if "msgpack" in name else "json"
            side = "encode" if "encode" in name or "dumps" in name else "decode"
            bare = results.get(f"bare msgspec {fmt} {side}", ops)
            print(f"{name:32} {ops:12,.0f} {1e6 / ops:8.2f} {bare / ops:15.1f}x")


if __name__ == "__main__":
    main()
