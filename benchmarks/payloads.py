"""Deterministic webhook-like payloads for the benchmarks (issue 11: a run's cost must not
grow with its payload).

``webhook(size, seed)`` builds an "order.created" event shaped like a shop's webhook: an
envelope, a customer, addresses, line items with nested variants, properties and tax lines,
fulfillment history, free text. Its compact JSON (UTF-8) is exactly ``size`` bytes: line items
are added while they fit, then a note string takes up the rest. The same (size, seed)
always gives the same payload; different seeds give payloads that share their shape but
hardly any values, so no store can deduplicate one run's payload against another's.
"""

from __future__ import annotations

import json
import random
from typing import Any

KB = 1024
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
         "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "amber",
         "basil", "cedar", "dune", "ember", "fjord", "grove", "harbor", "iris", "jade"]


def size_of(value: Any) -> int:
    """Bytes of compact JSON, as the payload sizes here are counted."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _address(rng: random.Random) -> dict[str, Any]:
    return {"name": _words(rng, 2).title(), "street": f"{rng.randint(1, 999)} {_words(rng, 2)} st",
            "city": _words(rng, 1).title(), "zip": f"{rng.randint(10000, 99999)}",
            "country": rng.choice(["DE", "FR", "US", "JP", "BR", "NL"]),
            "geo": {"lat": round(rng.uniform(-80, 80), 6), "lon": round(rng.uniform(-170, 170), 6)}}


def _line_item(rng: random.Random, i: int) -> dict[str, Any]:
    price = round(rng.uniform(1, 400), 2)
    qty = rng.randint(1, 5)
    return {
        "id": rng.getrandbits(52), "sku": f"SKU-{rng.randint(0, 10**8):08d}",
        "title": _words(rng, 4), "quantity": qty, "price": price,
        "total": round(price * qty, 2), "taxable": rng.random() < 0.8,
        "variant": {"id": rng.getrandbits(40), "title": _words(rng, 2),
                    "options": {"size": rng.choice("SMLX"), "color": rng.choice(WORDS)},
                    "weight_g": rng.randint(10, 5000)},
        "properties": [{"name": _words(rng, 1), "value": _words(rng, 3)} for _ in range(2)],
        "tax_lines": [{"title": "VAT", "rate": 0.19, "price": round(price * 0.19, 2)}],
        "discounts": [] if i % 3 else [{"code": f"SAVE{rng.randint(5, 30)}",
                                        "amount": round(price * 0.1, 2)}],
    }


def webhook(size: int, seed: int = 11) -> dict[str, Any]:
    """An "order.created" webhook whose compact JSON is exactly ``size`` bytes (≥ 1 KB)."""
    rng = random.Random(seed)
    order: dict[str, Any] = {
        "id": rng.getrandbits(48), "number": rng.randint(1000, 99999),
        "currency": "EUR", "total_price": 0.0, "financial_status": "paid",
        "customer": {"id": rng.getrandbits(40), "email": f"{rng.choice(WORDS)}{seed}@example.com",
                     "tags": [rng.choice(WORDS) for _ in range(3)], "orders_count": rng.randint(1, 40)},
        "shipping_address": _address(rng), "billing_address": _address(rng),
        "line_items": [], "fulfillments": [], "note": "",
    }
    event: dict[str, Any] = {"id": f"evt_{seed:08d}_{rng.getrandbits(32):08x}",
                             "type": "order.created", "api_version": "2026-10",
                             "created_at": f"2026-11-{1 + seed % 28:02d}T12:{seed % 60:02d}:00Z",
                             "data": {"order": order}}
    base = size_of(event)
    if base + 16 > size:
        raise ValueError(f"a webhook needs at least {base + 16} bytes, not {size}")
    room = size - base
    i = 0
    while True:  # line items (with a fulfillment per fifth) while they fit
        item = _line_item(rng, i)
        extra = size_of(item) + 1
        fulfil = None
        if i % 5 == 4:
            fulfil = {"id": rng.getrandbits(40), "status": "success", "items": [item["id"]],
                      "tracking": f"TRK{rng.getrandbits(40):012x}"}
            extra += size_of(fulfil) + 1
        if extra > room - 32:
            break
        order["line_items"].append(item)
        if fulfil:
            order["fulfillments"].append(fulfil)
        order["total_price"] = round(order["total_price"] + item["total"], 2)
        room -= extra  # the total's digits are not counted here: the note absorbs them
        i += 1
    room = size - size_of(event)
    order["note"] = _words(rng, room // 4 + 2)[:room]
    # Float rounding can shift the count by a byte or two: trim or pad the note to fit.
    order["note"] = order["note"][: len(order["note"]) - max(0, size_of(event) - size)]
    order["note"] += "x" * (size - size_of(event))
    assert size_of(event) == size, (size_of(event), size)
    return event


def encoded(size: int, seed: int = 11) -> bytes:
    """The webhook as the compact JSON bytes a client would send."""
    return json.dumps(webhook(size, seed), separators=(",", ":"), ensure_ascii=False).encode()
