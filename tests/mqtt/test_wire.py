"""The MQTT packet codec without a network: what it writes and how it reads a stream."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqtt import wire


def read_all(reader: wire.Reader, data: bytes, cuts: list[int]) -> list[wire.Packet]:
    """Feed ``data`` cut at ``cuts`` (positions), collecting every packet."""
    out: list[wire.Packet] = []
    last = 0
    for cut in [*sorted(cuts), len(data)]:
        out += reader.feed(data[last:cut])
        last = cut
    return out


def test_remaining_length_matches_the_standard_examples() -> None:
    # MQTT 3.1.1, 2.2.3: the boundaries of one to four bytes.
    assert wire.remaining_length(0) == b"\x00"
    assert wire.remaining_length(127) == b"\x7f"
    assert wire.remaining_length(128) == b"\x80\x01"
    assert wire.remaining_length(16_383) == b"\xff\x7f"
    assert wire.remaining_length(16_384) == b"\x80\x80\x01"
    assert wire.remaining_length(268_435_455) == b"\xff\xff\xff\x7f"
    with pytest.raises(ValueError, match="over MQTT"):
        wire.remaining_length(268_435_456)


def test_connect_carries_the_session_flag_keepalive_and_credentials() -> None:
    packet = wire.connect("me", clean=False, keepalive=60, username="u", password="p")  # noqa: S106
    assert packet[0] == 0x10
    body = packet[2:]
    assert body[:7] == b"\x00\x04MQTT\x04"
    assert body[7] == 0x80 | 0x40  # user name and password, not clean
    assert body[8:10] == (60).to_bytes(2, "big")
    assert body[10:] == b"\x00\x02me\x00\x01u\x00\x01p"
    assert wire.connect("me", clean=True, keepalive=0)[9] == 0x02


@given(
    topic=st.text(min_size=1, max_size=300).filter(lambda t: "\0" not in t),
    payload=st.binary(max_size=70_000),
    qos=st.sampled_from([0, 1]),
    packet_id=st.integers(1, 0xFFFF),
    cuts=st.lists(st.integers(0, 70_400), max_size=6),
)
def test_a_publish_reads_back_whole_however_the_stream_is_cut(
    topic: str, payload: bytes, qos: int, packet_id: int, cuts: list[int]
) -> None:
    packet = wire.publish(topic.encode(), payload, qos, packet_id)
    stream = packet + wire.puback(7) + packet
    packets = read_all(wire.Reader(1 << 20), stream, [c for c in cuts if c < len(stream)])
    assert [p.kind for p in packets] == [wire.PUBLISH, wire.PUBACK, wire.PUBLISH]
    first = wire.parse_publish(packets[0].flags, packets[0].body)
    assert first == wire.Publish(topic, payload, qos, packet_id if qos else 0)
    assert wire.packet_id_of(packets[1].body) == 7


def test_a_packet_over_the_bound_other_than_a_publish_is_refused() -> None:
    reader = wire.Reader(100)
    header = b"\x90" + wire.remaining_length(1_000_000)  # a SUBACK that large
    with pytest.raises(wire.ProtocolError, match="over this client's 100"):
        reader.feed(header)


@given(cuts=st.lists(st.integers(0, 3_000), max_size=8), qos=st.sampled_from([0, 1]))
def test_a_publish_over_the_bound_is_skipped_but_its_header_kept(cuts: list[int], qos: int) -> None:
    """Not buffered, but reported (to be acknowledged), and the stream goes on after it."""
    big = wire.publish(b"big/topic", bytes(2_000), qos, 77)
    after = wire.publish(b"next", b"small", 1, 78)
    stream = wire.puback(1) + big + after
    packets = read_all(wire.Reader(500), stream, [c for c in cuts if c < len(stream)])
    assert [(p.kind, p.dropped) for p in packets] == [
        (wire.PUBACK, 0),
        (wire.PUBLISH, len(big) - 3),  # the remaining length: all but the fixed header
        (wire.PUBLISH, 0),
    ]
    head = wire.parse_publish(packets[1].flags, packets[1].body)
    assert head == wire.Publish("big/topic", b"", qos, 77 if qos else 0)
    assert wire.parse_publish(packets[2].flags, packets[2].body).payload == b"small"


def test_a_remaining_length_of_five_bytes_is_refused() -> None:
    with pytest.raises(wire.ProtocolError, match="more than four bytes"):
        wire.Reader(1 << 30).feed(b"\x30\xff\xff\xff\xff\x01")


def test_malformed_publishes_are_protocol_errors() -> None:
    with pytest.raises(wire.ProtocolError, match="QoS 2"):
        wire.parse_publish(0x04, b"\x00\x01t\x00\x01")
    with pytest.raises(wire.ProtocolError, match="not UTF-8"):
        wire.parse_publish(0, b"\x00\x01\xff")
    with pytest.raises(wire.ProtocolError, match="shorter"):
        wire.parse_publish(0x02, b"\x00\x05ab")
    with pytest.raises(wire.ProtocolError, match="without a topic"):
        wire.parse_publish(0, b"\x00")


def test_subscribe_lists_every_filter_with_its_qos() -> None:
    packet = wire.subscribe(9, ["a/#", "$share/g/b/+"])
    assert packet[0] == 0x82
    assert packet[2:] == b"\x00\x09" + b"\x00\x03a/#\x01" + b"\x00\x0c$share/g/b/+\x01"


def test_a_large_packet_in_many_pieces_is_read_once_complete() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    packet = wire.publish(b"t", payload, 1, 3)
    reader = wire.Reader(2 << 20)
    got: list[wire.Packet] = []
    for start in range(0, len(packet), 1000):
        got += reader.feed(packet[start : start + 1000])
    assert len(got) == 1
    assert wire.parse_publish(got[0].flags, got[0].body).payload == payload
