"""The data converter: temporalio's pydantic JSON converter, built once per process.

The SDK makes a new payload converter for every workflow activation (each one serializes
in its own context), and `PydanticPayloadConverter()` builds a fresh serializer and an empty
TypeAdapter cache each time, so every activation paid to build a TypeAdapter again. Profiled
under load that was 5% of the worker's Python CPU (loadtest/PROFILE.md). This converter
reuses one set of encoding converters (the TypeAdapter cache is thread-safe), and writes
exactly the payloads `pydantic_data_converter` writes: same encodings, same order.
"""

from __future__ import annotations

import functools

from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    EncodingPayloadConverter,
)


@functools.cache
def _encoding_converters() -> tuple[EncodingPayloadConverter, ...]:
    return tuple(PydanticPayloadConverter().converters.values())


class SharedPydanticPayloadConverter(CompositePayloadConverter):
    """`PydanticPayloadConverter` whose encoding converters are shared by every instance."""

    def __init__(self) -> None:
        super().__init__(*_encoding_converters())


@functools.cache
def data_converter() -> DataConverter:
    """The converter every haul client, worker and replayer uses (through the plugin)."""
    return DataConverter(payload_converter_class=SharedPydanticPayloadConverter)
