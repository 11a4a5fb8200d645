"""Opening robot logs without a ROS install: ROS 1 ``.bag`` files, ROS 2 bag folders (sqlite3 or MCAP storage),
and plain ``.mcap``/``.db3`` files with ROS 2 messages, read through ``rosbags`` (pure Python).

``BagFile(paths).messages(topics)`` yields deserialised messages in log-time order. A bag whose index is missing or
damaged (a recorder that was killed, a file cut short by a copy) is refused with a message that says so; with
``salvage=True`` the readable part is scanned sequentially instead (ROS 1 bags: every complete chunk; MCAP files:
every record before the damage, through the ``mcap`` stream reader) and ``salvage_note`` says what was kept.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perception.errors import InputError

# rosbags' own words for an index it cannot use (ROS 1: missing/damaged index; MCAP: no footer/summary)
_DAMAGE_HINTS = ("not indexed", "index looks damaged", "truncated", "end magic", "mcap footer", "summary offset")


class BagError(InputError):
    """A robot log cannot be read; the message names the file, what was expected and what was found."""


@dataclass(frozen=True)
class BagTopic:
    """One topic of a bag: its ROS 2-style message type (``sensor_msgs/msg/Image``) and message count (-1: unknown)."""

    name: str
    msgtype: str
    count: int


def describe_topics(topics: dict[str, BagTopic], limit: int = 40) -> str:
    """``/a (sensor_msgs/msg/Image), /b (...)`` for error messages, at most ``limit`` topics."""
    items = [f"{t.name} ({t.msgtype})" for t in sorted(topics.values(), key=lambda t: t.name)]
    more = f", ... {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more if items else "none"


def _kind(path: Path) -> str:
    if path.is_dir():
        return "ros2"
    suffix = path.suffix.lower()
    if suffix == ".bag":
        return "ros1"
    if suffix in (".mcap", ".db3"):
        return "ros2"
    raise BagError(
        f"{path}: expected a ROS 1 .bag file, a ROS 2 bag folder (metadata.yaml + .db3/.mcap) or a .mcap/.db3 file, "
        f"found suffix {path.suffix!r}"
    )


class BagFile:
    """One recording (several ROS 1 bags of one recording, or one ROS 2 bag) opened for reading."""

    def __init__(self, paths: Sequence[str | os.PathLike], *, salvage: bool = False) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise BagError("no bag given: expected at least one .bag, .mcap, .db3 file or ROS 2 bag folder")
        for path in self.paths:
            if not path.exists():
                raise BagError(f"{path}: file not found")
        kinds = {_kind(p) for p in self.paths}
        if len(kinds) > 1:
            raise BagError(
                f"{', '.join(map(str, self.paths))}: expected bags of one ROS version, found both ROS 1 and ROS 2"
            )
        self.kind = kinds.pop()
        self.salvage = salvage
        self.salvage_note: str | None = None
        self._reader: Any = None
        self._mcap: _McapSalvage | None = None
        self.topics: dict[str, BagTopic] = {}

    @property
    def name(self) -> str:
        return ", ".join(str(p) for p in self.paths)

    # ------------------------------------------------------------------ opening
    def open(self) -> BagFile:
        from rosbags.highlevel import AnyReader, AnyReaderError
        from rosbags.typesys import Stores, get_typestore

        # ROS 1 bags always carry their message definitions; old ROS 2 sqlite3 bags may not: fall back to Humble's
        default = get_typestore(Stores.ROS2_HUMBLE) if self.kind == "ros2" else None
        reader = AnyReader(self.paths, default_typestore=default)
        try:
            reader.open()
        except (AnyReaderError, FileNotFoundError, OSError, KeyError, AssertionError, UnicodeDecodeError) as error:
            reason = " ".join(str(a) for a in getattr(error, "args", ())) or type(error).__name__
            damaged = isinstance(error, FileNotFoundError) or any(h in reason.lower() for h in _DAMAGE_HINTS)
            if not damaged:
                raise BagError(f"{self.name}: cannot read as a ROS bag ({reason})") from None
            if not self.salvage:
                raise BagError(
                    f"{self.name}: the bag is truncated or not indexed (rosbags: {reason}); expected a complete, "
                    f"indexed recording: pass --salvage to import the messages that can still be read"
                ) from None
            self._open_salvaged(reason)
            return self
        self._reader = reader
        self.topics = {
            name: BagTopic(name, info.msgtype or "?", int(info.msgcount)) for name, info in reader.topics.items()
        }
        return self

    def _open_salvaged(self, reason: str) -> None:
        if self.kind == "ros1":
            from rosbags.highlevel import AnyReader

            reader = AnyReader(self.paths)
            reader.readers = [_salvage_reader1(path) for path in self.paths]
            reader.open()
            self._reader = reader
            kept = sum(r.salvaged_messages for r in reader.readers)
            ends = "; ".join(r.salvage_end for r in reader.readers)
            counts: dict[str, int] = defaultdict(int)
            for r in reader.readers:
                for connection in r.connections:
                    counts[connection.topic] += len(r.indexes.get(connection.id, []))
            self.topics = {
                c.topic: BagTopic(c.topic, c.msgtype, counts[c.topic]) for r in reader.readers for c in r.connections
            }
        else:
            files = []
            for path in self.paths:
                if path.is_dir():
                    files += sorted(path.glob("*.mcap"))
                elif path.suffix.lower() == ".mcap":
                    files.append(path)
            if not files:
                raise BagError(
                    f"{self.name}: the bag is damaged ({reason}) and --salvage reads only ROS 1 bags and MCAP files, "
                    f"found no .mcap file"
                )
            self._mcap = _McapSalvage(files)
            self.topics = self._mcap.topics
            kept, ends = self._mcap.message_count, "; ".join(self._mcap.ends)
        if not kept:
            raise BagError(
                f"{self.name}: the bag is damaged ({reason}) and --salvage found no complete chunk of messages ({ends})"
            )
        self.salvage_note = f"salvaged {kept} messages from a damaged bag ({reason}): {ends}"

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> BagFile:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading
    def messages(self, topics: Iterable[str]) -> Iterator[tuple[str, str, int, Any]]:
        """(topic, msgtype, log time ns, message) of the given topics, in log-time order."""
        wanted = set(topics)
        if self._mcap is not None:
            yield from self._mcap.messages(wanted)
            return
        reader = self._reader
        connections = [c for c in reader.connections if c.topic in wanted]
        if not connections:
            return
        try:
            for connection, log_time, raw in reader.messages(connections=connections):
                yield connection.topic, connection.msgtype, int(log_time), reader.deserialize(raw, connection.msgtype)
        except Exception as error:  # rosbags raises several types for corrupt data inside an intact index
            if isinstance(error, GeneratorExit):
                raise
            raise BagError(f"{self.name}: cannot decode a message ({type(error).__name__}: {error})") from None


def _typestore(definitions: dict[str, tuple[str, str]]) -> Any:
    """A rosbags typestore from message definitions {msgtype: (encoding 'ros2msg'|'ros2idl'|..., text)}."""
    from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

    types: dict = {}
    separator = "=" * 80 + "\n"
    for msgtype, (encoding, text) in definitions.items():
        if encoding == "ros2msg":
            types.update(get_types_from_msg(text, msgtype))
        elif encoding in ("ros2idl", "omgidl") and text.startswith(f"{separator}IDL: "):
            for block in text.split(separator)[1:]:
                types.update(get_types_from_idl(block.split("\n", 1)[1]))
        elif encoding in ("ros2idl", "omgidl"):
            types.update(get_types_from_idl(text))
    store = get_typestore(Stores.ROS2_HUMBLE) if not types else get_typestore(Stores.EMPTY)
    if types:
        store.register(types)
    return store


class _McapSalvage:
    """Sequential reading of possibly truncated MCAP files (ROS 2 profile, CDR messages) with the ``mcap`` library."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self.topics: dict[str, BagTopic] = {}
        self.ends: list[str] = []
        self.message_count = 0
        counts: dict[str, int] = defaultdict(int)
        definitions: dict[str, tuple[str, str]] = {}
        for path in files:
            channels: dict[int, tuple[str, str]] = {}
            schemas: dict[int, str] = {}
            for record, end in self._records(path):
                if end is not None:
                    self.ends.append(end)
                    break
                kind = type(record).__name__
                if kind == "Schema":
                    schemas[record.id] = record.name
                    definitions[record.name] = (record.encoding, record.data.decode())
                elif kind == "Channel":
                    channels[record.id] = (record.topic, schemas.get(record.schema_id, "?"))
                elif kind == "Message" and record.channel_id in channels:
                    counts[channels[record.channel_id][0]] += 1
                    self.message_count += 1
            for topic, msgtype in channels.values():
                self.topics[topic] = BagTopic(topic, msgtype, counts[topic])
        self.typestore = _typestore(definitions)

    @staticmethod
    def _records(path: Path) -> Iterator[tuple[Any, str | None]]:
        from mcap.stream_reader import StreamReader

        with open(path, "rb") as stream:
            reader = StreamReader(stream, record_size_limit=1 << 31)
            iterator = reader.records
            while True:
                try:
                    record = next(iterator)
                except StopIteration:
                    yield None, f"{path.name}: read to the end"
                    return
                except Exception as error:  # any failure marks where the readable part ends
                    yield None, f"{path.name}: stopped at byte {stream.tell()} ({type(error).__name__})"
                    return
                yield record, None

    def messages(self, wanted: set[str]) -> Iterator[tuple[str, str, int, Any]]:
        for path in self.files:
            channels: dict[int, tuple[str, str]] = {}
            schemas: dict[int, str] = {}
            batch = []
            for record, end in self._records(path):
                if end is not None:
                    break
                kind = type(record).__name__
                if kind == "Schema":
                    schemas[record.id] = record.name
                elif kind == "Channel":
                    channels[record.id] = (record.topic, schemas.get(record.schema_id, "?"))
                elif kind == "Message" and record.channel_id in channels:
                    topic, msgtype = channels[record.channel_id]
                    if topic in wanted:
                        batch.append((record.log_time, topic, msgtype, record.data))
            for log_time, topic, msgtype, data in sorted(batch, key=lambda item: item[0]):
                yield topic, msgtype, int(log_time), self.typestore.deserialize_cdr(data, msgtype)


def _salvage_reader_class() -> type:
    from rosbags.interfaces import Connection, ConnectionExtRosbag1, MessageDefinition, MessageDefinitionFormat
    from rosbags.rosbag1 import Reader as Reader1
    from rosbags.rosbag1.reader import (
        Chunk,
        Header,
        IndexData,
        ReaderError,
        RecordType,
        decompressors,
        normalize,
        read_bytes,
        read_uint32,
    )
    from rosbags.typesys.msg import normalize_msgtype

    class SalvageReader1(Reader1):
        """A ROS 1 reader that rebuilds the index by scanning every complete chunk (the bag's own index is unusable)."""

        salvaged_messages = 0
        salvage_end = ""

        def open(self) -> None:
            import re
            from io import BytesIO

            self.bio = self.path.open("rb")
            size = self.path.stat().st_size
            magic = self.bio.readline().decode(errors="replace")
            if not re.match(r"#ROSBAG V2\.0\n", magic):
                self.bio.close()
                self.bio = None
                raise ReaderError(f"File magic is invalid: {magic[:20]!r}")
            connections: dict[int, Connection] = {}
            indexes: dict[int, list] = defaultdict(list)
            position = self.bio.tell()
            self.salvage_end = f"{self.path.name}: read to the end"
            while position < size:
                try:
                    header = Header.read(self.bio)
                    op = header.get_uint8("op")
                    if op == RecordType.CHUNK:
                        compression = header.get_string("compression")
                        datasize = read_uint32(self.bio)
                        datapos = self.bio.tell()
                        raw = decompressors[compression](read_bytes(self.bio, datasize))
                        chunk = BytesIO(raw)
                        while chunk.tell() < len(raw):
                            offset = chunk.tell()
                            inner = Header.read(chunk)
                            inner_op = inner.get_uint8("op")
                            if inner_op == RecordType.CONNECTION:
                                connection = self._connection(inner, chunk)
                                connections[connection.id] = connection
                                continue
                            data_size = read_uint32(chunk)
                            chunk.seek(data_size, os.SEEK_CUR)
                            if inner_op == RecordType.MSGDATA:
                                indexes[inner.get_uint32("conn")].append(
                                    IndexData(inner.get_time("time"), position, offset)
                                )
                        self.chunks[position] = Chunk(datasize, datapos, decompressors[compression])
                    elif op == RecordType.CONNECTION:
                        connection = self._connection(header, self.bio)
                        connections[connection.id] = connection
                    else:
                        self.bio.seek(read_uint32(self.bio), os.SEEK_CUR)
                except (ReaderError, KeyError, OSError, ValueError, EOFError) as error:
                    self.salvage_end = f"{self.path.name}: stopped at byte {position} of {size} ({error})"
                    for entries in indexes.values():  # drop entries of the chunk that failed half-way
                        entries[:] = [e for e in entries if e.chunk_pos in self.chunks]
                    break
                position = self.bio.tell()
            self.connections = [
                c._replace(msgcount=len(indexes.get(c.id, []))) for c in connections.values() if c.id in indexes
            ]
            self.indexes = {c.id: sorted(indexes[c.id]) for c in self.connections}
            self.salvaged_messages = sum(len(v) for v in self.indexes.values())

        def _connection(self, header: Any, stream: Any) -> Any:
            """A CONNECTION record whose header (op, conn, topic) is parsed; its data (type, definition) follows."""
            data = Header.read(stream)
            return Connection(
                header.get_uint32("conn"),
                normalize(header.get_string("topic")),
                normalize_msgtype(data.get_string("type")),
                MessageDefinition(MessageDefinitionFormat.MSG, data.get_string("message_definition")),
                data.get_string("md5sum"),
                0,
                ConnectionExtRosbag1(None, None),
                self,
            )

    return SalvageReader1


def _salvage_reader1(path: Path) -> Any:
    return _salvage_reader_class()(path)


__all__ = ["BagError", "BagFile", "BagTopic", "describe_topics"]
