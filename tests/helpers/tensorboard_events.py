"""Reads the scalars back out of TensorBoard event files, without TensorFlow.

An event file is a sequence of TFRecords (8-byte little-endian length, 4-byte
length CRC, the serialized `Event` proto, 4-byte data CRC); tensorboardX ships
the `Event` proto.
"""
import pathlib
import struct

from tensorboardX.proto import event_pb2


def read_scalars(logdir) -> dict[str, list[tuple[int, float]]]:
  """{tag: [(step, value), ...]} over every event file directly in `logdir`."""
  scalars: dict[str, list[tuple[int, float]]] = {}
  for path in sorted(pathlib.Path(logdir).glob("events.out.tfevents.*")):
    data = path.read_bytes()
    pos = 0
    while pos < len(data):
      (length,) = struct.unpack_from("<Q", data, pos)
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
      pos += 12 + length + 4
      for value in event.summary.value:
        scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
  return scalars
