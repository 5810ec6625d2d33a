"""The sandbox's bill log: what fal would bill, per completed output, from the sizes it really returned."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from waiting import wait_for

from kontext_nb import endpoints
from kontext_nb.sandbox.billing import bill_for

KEY = {"Authorization": "Key sandbox-test"}
MAX_T2I = "fal-ai/flux-pro/kontext/max/text-to-image"
LORA_T2I = "fal-ai/flux-kontext-lora/text-to-image"


def _run(sb: Any, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    with httpx.Client(base_url=sb.url, headers=KEY, timeout=10, trust_env=False) as http:
        sent = http.post(f"/{endpoint}", json=body).json()
        wait_for(lambda: http.get(sent["status_url"]).json()["status"] == "COMPLETED", timeout=30, interval=0.02)
        answer: dict[str, Any] = http.get(sent["response_url"]).json()
        return answer


def test_each_completed_output_is_billed_once_at_its_price(sb: Any) -> None:
    before = time.time()
    _run(sb, MAX_T2I, {"prompt": "a fox", "num_images": 2})
    bills = sb.bills()
    assert bills["count"] == 1 and bills["total"] == pytest.approx(0.16)
    line = bills["bills"][0]
    assert (line["endpoint"], line["unit"], line["quantity"], line["unit_price"]) == (MAX_T2I, "image", 2, 0.08)
    assert line["at"] >= before and sb.billed() == pytest.approx(0.16)


def test_per_megapixel_bills_come_from_the_returned_sizes(sb: Any) -> None:
    sb.configure(image_scale=1.0)
    answer = _run(sb, LORA_T2I, {"prompt": "a lighthouse", "image_size": {"width": 2048, "height": 1024}})
    sizes = [(i["width"], i["height"]) for i in answer["images"]]
    assert sizes == [(2048, 1024)]
    line = sb.bills()["bills"][0]
    assert line["unit"] == "megapixel" and line["quantity"] == 2
    assert line["amount"] == pytest.approx(2 * endpoints.PRICE_PER_MEGAPIXEL["lora"])


def test_failed_and_cancelled_requests_are_not_billed(sb: Any) -> None:
    sb.configure(queue_delay=3600.0)
    with httpx.Client(base_url=sb.url, headers=KEY, timeout=10, trust_env=False) as http:
        sent = http.post(f"/{MAX_T2I}", json={"prompt": "a fox"}).json()
        assert http.put(sent["cancel_url"]).json()["status"] == "CANCELLATION_REQUESTED"
    sb.configure(queue_delay=0.0)
    _run(sb, MAX_T2I, {"prompt": "[sandbox:runner_server_error] a fox"})
    assert sb.bills() == {"total": 0, "count": 0, "bills": []}


def test_the_window_filter_and_the_pricing_rule() -> None:
    bill = bill_for(MAX_T2I, "r1", [(1024, 1024), (512, 512)], at=10.0)
    assert (bill.quantity, bill.cost) == (2, pytest.approx(0.16))
    mp = bill_for(LORA_T2I, "r2", [(4096, 4096)])
    assert (mp.quantity, mp.cost) == (16, pytest.approx(16 * endpoints.PRICE_PER_MEGAPIXEL["lora"]))
