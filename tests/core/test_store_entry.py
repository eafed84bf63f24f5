from __future__ import annotations

import struct

import pytest
import xxhash

from promptcache._errors import StoreError
from promptcache._store import CorruptEntryError, Entry, decode_entry, encode_entry

ENTRY = Entry(
    verify="f" * 32,
    status=200,
    headers=(("content-type", "application/json"), ("x-request-id", "req_1")),
    body=b'{"id":"chatcmpl-1","choices":[]}',
    stream=False,
    meta={"usage": {"input_tokens": 12}, "cost": "0.0012"},
    created=1_790_000_000.5,
)


def test_round_trip() -> None:
    assert decode_entry(encode_entry(ENTRY)) == ENTRY


def test_round_trip_stream_and_binary_body() -> None:
    sse = b'data: {"a":1}\n\n' * 1000 + bytes(range(256))
    e = Entry("v", 200, (), sse, True, None, 0.0)
    assert decode_entry(encode_entry(e)) == e


def test_corrupt_entry_is_a_store_error() -> None:
    assert issubclass(CorruptEntryError, StoreError)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b"",
        lambda b: b[:5],
        lambda b: b[:-1],
        lambda b: b + b"x",
        lambda b: b"XYZ" + b[3:],
        lambda b: b[:3] + bytes([99]) + b[4:],
        lambda b: b[:-3] + b"zzz",  # body bit rot: checksum catches it
        lambda b: b"\x80\x04\x95" + b[3:],  # a pickle header is not an entry
    ],
)
def test_malformed_data_raises(mangle: object) -> None:
    data = encode_entry(ENTRY)
    with pytest.raises(CorruptEntryError):
        decode_entry(mangle(data))  # type: ignore[operator]


def test_malformed_header_json_raises() -> None:
    header = b'{"verify": 1}'
    prefix = struct.pack(">3sBIIQ", b"PCE", 1, len(header), 0, xxhash.xxh3_64_intdigest(b""))
    with pytest.raises(CorruptEntryError):
        decode_entry(prefix + header)
    bad = b"{not json"
    prefix = struct.pack(">3sBIIQ", b"PCE", 1, len(bad), 0, xxhash.xxh3_64_intdigest(b""))
    with pytest.raises(CorruptEntryError):
        decode_entry(prefix + bad)
