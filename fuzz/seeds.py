#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/seeds/TARGET/) and nothing else.

The protobuf seeds are encoded by hand (no protobuf package needed): a few valid requests
of each kind, so libFuzzer starts from inputs that pass decoding and reach validation.
The first byte of each seed picks the RPC or input kind, as the targets read it.
condition_eval takes `arbitrary` bytes; its seeds are a few fixed byte strings.
Run from fuzz/: python3 seeds.py
"""
import os
import struct


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def v(field, n):
    return key(field, 0) + varint(n)


def s(field, data):
    if isinstance(data, str):
        data = data.encode()
    return key(field, 2) + varint(len(data)) + data


def d(field, x):
    return key(field, 1) + struct.pack("<d", x)


def ts(field, seconds, nanos=0):
    return s(field, v(1, seconds) + (v(2, nanos) if nanos else b""))


def value(x):
    if x is None:
        return v(1, 0)
    if isinstance(x, bool):
        return v(4, int(x))
    if isinstance(x, (int, float)):
        return d(2, float(x))
    if isinstance(x, str):
        return s(3, x)
    if isinstance(x, dict):
        return s(5, struct_(x))
    return s(6, b"".join(s(1, value(i)) for i in x))


def struct_(m):
    return b"".join(s(1, s(1, k) + s(2, value(x))) for k, x in m.items())


def event(eid, subject="s-1", etype="payment", payload=None, when=1_767_225_600, loc=True):
    out = s(1, eid) + s(2, subject) + s(3, etype) + s(4, "late") + s(5, "bank")
    out += ts(6, when, 5)
    if loc:
        out += s(7, s(1, "north") + s(2, "d1") + d(3, 52.1) + d(4, 4.3))
    if payload is not None:
        out += s(8, struct_(payload))
    return out + s(9, "https://example.invalid/e")


def profile(subject, year=1990, flags=("student",)):
    out = s(1, subject) + s(2, "Name") + v(3, year) + s(4, "north") + s(5, "d1") + s(6, "clerk")
    for f in flags:
        out += s(7, f)
    out += s(8, s(1, "marketing") + v(2, 1)) + s(9, s(1, "k") + s(2, "v"))
    return out


def condition(field, op, val):
    return s(1, field) + v(2, op) + s(3, value(val))


def rule(rid="late_payment", etype="payment", points=-10.0):
    out = s(1, rid) + v(2, 1) + s(3, "Late payment") + v(5, 2) + s(6, etype) + s(7, "late")
    out += s(8, condition("payload.days_late", 3, 30))
    out += s(8, condition("subject.flags", 9, "student"))
    out += d(9, points)
    out += s(10, s(1, condition("payload.amount", 4, 1000)) + d(2, 1.5))
    out += s(11, v(1, 3600))  # cooldown 1h
    out += s(12, v(1, 3) + s(2, v(1, 86400)))  # cap 3 per day
    out += ts(13, 1_700_000_000) + ts(14, 1_900_000_000) + v(15, 5)
    return out


def config():
    out = v(1, 2) + d(2, 500.0) + d(3, 0.0) + d(4, 1000.0)
    for name, low in (("low", 0.0), ("medium", 400.0), ("high", 700.0)):
        out += s(5, s(1, name) + d(2, low))
    out += s(6, s(1, v(1, 30 * 86400)))
    out += d(7, 300.0) + v(8, 1) + s(10, v(1, 7 * 86400)) + v(11, 1000)
    return out


PAYLOAD = {"amount": 1200.5, "days_late": 45, "tags": ["a", "b"], "meta": {"x": True, "n": None}}

SEEDS = {
    "ingest_request": {
        "publish_one": b"\x00" + s(1, event("e-1", payload=PAYLOAD)),
        "publish_three": b"\x00" + b"".join(s(1, event(f"e-{i}", payload={"i": i})) for i in range(3)),
        "publish_empty_fields": b"\x00" + s(1, s(1, "e-2")),
        "publish_deep": b"\x00" + s(1, event("e-3", payload={"a": {"b": {"c": {"d": [[[1]]]}}}})),
        "stream_two": b"\x01" + s(1, event("e-4", loc=False)) + s(1, event("e-5", when=-1)),
        "profiles": b"\x02" + s(1, profile("s-1")) + s(1, profile("s-2", 0, ())),
    },
    "rule_config": {
        "put_rule": b"\x00" + s(1, rule()),
        "put_config": b"\x01" + s(1, config()),
        "simulate": b"\x02"
        + s(1, rule())
        + s(2, config())
        + s(3, profile("s-1"))
        + s(4, s(1, "s-1") + v(2, 1) + s(3, "fraud") + ts(4, 1_900_000_000))
        + s(5, event("e-1", payload=PAYLOAD))
        + s(5, event("e-2", payload={"days_late": 10})),
    },
    "condition_eval": {
        "empty": b"",
        "ones": bytes([1] * 64),
        "mixed": bytes(range(256)),
    },
}

RULE_YAML = """config:
  baseline: 500
  min_score: 0
  max_score: 1000
  tiers:
    - {name: low, min_score: 0}
    - {name: high, min_score: 700}
  decay: {half_life: 30d}
  alert_thresholds: [300]
rules:
  - id: late_payment
    status: active
    event_type: payment
    event_subtype: late
    conditions:
      - {field: payload.days_late, op: gt, value: 30}
      - {field: subject.lists, op: contains, value: block}
    points: -25
    multipliers:
      - when: {field: payload.amount, op: gte, value: 1000}
        factor: 2
    cooldown: 1h
    cap: {max: 3, window: 7d}
    priority: 1
"""

RULE_JSON = """{"config": {"baseline": 500, "tiers": [{"name": "low", "min_score": 0}]},
 "rules": [{"id": "r1", "status": "active", "event_type": "payment", "points": 5,
            "conditions": [{"field": "event.location.region", "op": "in", "value": ["north", "south"]}]}]}
"""


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    example = os.path.join(here, "..", "scorer", "rules", "example.yaml")
    with open(example, "rb") as f:
        SEEDS["rule_config"]["example_yaml"] = b"\x03" + f.read()
    SEEDS["rule_config"]["small_yaml"] = b"\x03" + RULE_YAML.encode()
    SEEDS["rule_config"]["small_json"] = b"\x04" + RULE_JSON.encode()
    for target, seeds in SEEDS.items():
        out = os.path.join(here, "seeds", target)
        os.makedirs(out, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
