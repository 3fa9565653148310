"""haul's converter writes what temporalio's pydantic converter writes, and reads it back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import BaseModel
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import WorkflowSerializationContext

from app.platform.converter import SharedPydanticPayloadConverter, data_converter


class Invoice(BaseModel):
    number: str
    amount: Decimal
    billed: datetime


@dataclass
class Tag:
    name: str


VALUES = [
    Invoice(number="INV-1", amount=Decimal("12.50"), billed=datetime(2026, 1, 2, tzinfo=UTC)),
    Tag("x"),
    None,
    b"\x00raw",
    {"a": [1, 2]},
    "text",
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_payloads_are_byte_for_byte_those_of_the_sdk_pydantic_converter(value: object) -> None:
    ours = data_converter().payload_converter.to_payloads([value])
    theirs = pydantic_data_converter.payload_converter.to_payloads([value])
    assert ours == theirs
    back = data_converter().payload_converter.from_payloads(ours, [type(value)])
    assert back == [value]


def test_a_bad_payload_for_a_model_is_refused() -> None:
    payloads = data_converter().payload_converter.to_payloads([{"number": "INV-1"}])
    with pytest.raises(Exception, match="amount"):
        data_converter().payload_converter.from_payloads(payloads, [Invoice])


def test_every_instance_and_context_shares_one_set_of_encoding_converters() -> None:
    first, second = SharedPydanticPayloadConverter(), SharedPydanticPayloadConverter()
    pairs = zip(first.converters.values(), second.converters.values(), strict=True)
    assert all(a is b for a, b in pairs)
    context = WorkflowSerializationContext(namespace="haul", workflow_id="wf")
    in_context = data_converter().with_context(context)
    assert isinstance(in_context.payload_converter, type(data_converter().payload_converter))
    assert in_context.payload_converter.to_payloads([VALUES[0]]) == (
        pydantic_data_converter.payload_converter.to_payloads([VALUES[0]])
    )
