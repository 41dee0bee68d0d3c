"""The few MQTT 5 packets the benchmark's spread feed writes and reads (OASIS MQTT 5.0, section 3), built
ahead of time so that sending costs the feed next to no CPU."""

from __future__ import annotations


def varint(value: int) -> bytes:
    """MQTT's variable byte integer (remaining length, property length): 7 bits a byte, low first."""
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def mqtt_string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def connect_packet(client_id: str) -> bytes:
    """MQTT 5 CONNECT: clean start, keep alive 60 s, no properties."""
    body = (
        mqtt_string("MQTT") + bytes([5, 0x02]) + (60).to_bytes(2, "big") + varint(0) + mqtt_string(client_id)
    )
    return bytes([0x10]) + varint(len(body)) + body


def publish_packet(topic: str, packet_id: int, payload: bytes) -> bytes:
    """MQTT 5 PUBLISH at QoS 1, no properties."""
    body = mqtt_string(topic) + packet_id.to_bytes(2, "big") + varint(0) + payload
    return bytes([0x32]) + varint(len(body)) + body


def read_packets(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Take every complete packet off the front of `buffer`: (first byte, body)."""
    packets = []
    while len(buffer) >= 2:
        length, multiplier, index = 0, 1, 1
        while True:
            if index >= len(buffer):
                return packets
            byte = buffer[index]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            index += 1
            if not byte & 0x80:
                break
        if len(buffer) < index + length:
            return packets
        packets.append((buffer[0], bytes(buffer[index : index + length])))
        del buffer[: index + length]
    return packets
