"""Read the rows of a damaged SQLite file page by page, without SQLite.

SQLite refuses a database whose b-tree is broken ("database disk image is malformed") and
reads a truncated tail as zeros. To save what is still on disk we read the documented file
format (https://www.sqlite.org/fileformat2.html) ourselves: the header, the committed frames
of a write-ahead log, table b-trees from their root pages, overflow chains, the freelist and
records. Every structure is bounds-checked; a page that does not parse is reported as
unreadable and skipped, never guessed at.

Only ever used on a catalogue that no connection of this process holds (see
`engine.project.connection.inspect_catalogue` on why a plain open() of a live database file
is dangerous): `engine.project.repair` checks that first.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

HEADER_MAGIC = b"SQLite format 3\x00"
LEAF_TABLE, INTERIOR_TABLE, LEAF_INDEX, INTERIOR_INDEX = 13, 5, 10, 2
_WAL_MAGIC = (0x377F0682, 0x377F0683)
_WAL_HEADER, _WAL_FRAME_HEADER = 32, 24

Value = int | float | str | bytes | None


class PageError(ValueError):
    """A page or record does not follow the file format."""


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """SQLite's big-endian varint at `pos`: (value, position after it)."""
    value = 0
    for i in range(9):
        if pos + i >= len(buf):
            raise PageError("varint runs past the end of the page")
        byte = buf[pos + i]
        if i == 8:
            return (value << 8) | byte, pos + 9
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, pos + i + 1
    raise AssertionError("unreachable")


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def decode_record(payload: bytes, encoding: str = "utf-8") -> list[Value]:
    """The column values of one record (the format's "record format")."""
    header_size, pos = read_varint(payload, 0)
    if header_size < 1 or header_size > len(payload):
        raise PageError("record header size is out of range")
    types = []
    while pos < header_size:
        serial, pos = read_varint(payload, pos)
        types.append(serial)
    if pos != header_size:
        raise PageError("record header overruns its size")
    values: list[Value] = []
    body = header_size
    int_sizes = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8}
    for serial in types:
        if serial == 0:
            values.append(None)
        elif serial in int_sizes:
            n = int_sizes[serial]
            chunk = payload[body:body + n]
            if len(chunk) != n:
                raise PageError("record value runs past its payload")
            values.append(_signed(int.from_bytes(chunk, "big"), n * 8))
            body += n
        elif serial == 7:
            chunk = payload[body:body + 8]
            if len(chunk) != 8:
                raise PageError("record value runs past its payload")
            values.append(struct.unpack(">d", chunk)[0])
            body += 8
        elif serial in (8, 9):
            values.append(serial - 8)
        elif serial in (10, 11):
            raise PageError("record uses a reserved serial type")
        else:
            n = (serial - 12) // 2 if serial % 2 == 0 else (serial - 13) // 2
            chunk = payload[body:body + n]
            if len(chunk) != n:
                raise PageError("record value runs past its payload")
            if serial % 2 == 0:
                values.append(bytes(chunk))
            else:
                try:
                    values.append(chunk.decode(encoding))
                except UnicodeDecodeError as exc:
                    raise PageError("record text is not valid text") from exc
            body += n
    if body != len(payload):
        raise PageError("record body does not fill its payload")
    return values


@dataclass
class Header:
    page_size: int
    reserved: int
    page_count: int
    first_freelist_trunk: int
    user_version: int
    encoding: str


def parse_header(first_page: bytes, file_size: int) -> Header:
    if len(first_page) < 100 or not first_page.startswith(HEADER_MAGIC):
        raise PageError("the file does not start with an SQLite header")
    page_size = int.from_bytes(first_page[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise PageError(f"the header's page size {page_size} is invalid")
    reserved = first_page[20]
    count = int.from_bytes(first_page[28:32], "big")
    if first_page[24:28] != first_page[92:96] or count == 0:
        count = file_size // page_size
    encoding = {1: "utf-8", 2: "utf-16-le", 3: "utf-16-be"}.get(
        int.from_bytes(first_page[56:60], "big"), "utf-8")
    return Header(page_size=page_size, reserved=reserved, page_count=count,
                  first_freelist_trunk=int.from_bytes(first_page[32:36], "big"),
                  user_version=int.from_bytes(first_page[60:64], "big", signed=True),
                  encoding=encoding)


def _schema_rows_score(image: PageImage) -> int:
    """How many rows of page 1's tree read as schema rows (type, name, table, root page,
    SQL): the measure of a guessed page size."""
    rows, _problems = image.walk_table(1, set())
    count = image.header.page_count
    return sum(1 for c in rows if len(c.values) == 5 and c.values[0] in ("table", "index")
               and isinstance(c.values[3], int) and 0 <= c.values[3] <= count
               and isinstance(c.values[4], str | None))


def rebuild_header(main: bytes, wal: bytes = b"") -> Header | None:
    """A header for a file whose first 100 bytes are lost, when its pages are sound: the page
    size that makes page 1 read as a schema table (the write-ahead log's page size is tried
    first). The freelist and the schema version are unknown (0); None if no size fits."""
    if len(main) < 512 or main[100] not in (LEAF_TABLE, INTERIOR_TABLE):
        return None
    sizes = [int.from_bytes(wal[8:12], "big")] if len(wal) >= _WAL_HEADER else []
    sizes += [4096, 1024, 2048, 8192, 16384, 32768, 65536, 512]
    best: tuple[int, Header] | None = None
    for size in dict.fromkeys(sizes):
        if size < 512 or size & (size - 1) or len(main) < size:
            continue
        header = Header(page_size=size, reserved=0, page_count=len(main) // size,
                        first_freelist_trunk=0, user_version=0, encoding="utf-8")
        pages = {n + 1: main[n * size:(n + 1) * size] for n in range(header.page_count)}
        score = _schema_rows_score(PageImage(header, pages))
        if score and (best is None or score > best[0]):
            best = (score, header)
    return best[1] if best else None


def _wal_checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    fmt = ">" if big_endian else "<"
    words = struct.unpack(f"{fmt}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def committed_wal_pages(wal: bytes, page_size: int) -> tuple[dict[int, bytes], int]:
    """Pages of the write-ahead log's committed transactions: ({page number: bytes},
    database size in pages after the last commit, or 0). Frames after the last valid commit,
    or from an older log generation (salts), are ignored, as SQLite itself would."""
    if len(wal) < _WAL_HEADER:
        return {}, 0
    magic, _version, wal_page_size = struct.unpack(">III", wal[:12])
    if magic not in _WAL_MAGIC or wal_page_size != page_size:
        return {}, 0
    big_endian = magic == _WAL_MAGIC[1]
    salt = wal[16:24]
    s0, s1 = _wal_checksum(wal[:24], 0, 0, big_endian)
    if struct.unpack(">II", wal[24:32]) != (s0, s1):
        return {}, 0
    committed: dict[int, bytes] = {}
    pending: dict[int, bytes] = {}
    db_size = 0
    pos = _WAL_HEADER
    while pos + _WAL_FRAME_HEADER + page_size <= len(wal):
        head = wal[pos:pos + _WAL_FRAME_HEADER]
        data = wal[pos + _WAL_FRAME_HEADER:pos + _WAL_FRAME_HEADER + page_size]
        page_no, commit_size = struct.unpack(">II", head[:8])
        if head[8:16] != salt:
            break
        s0, s1 = _wal_checksum(head[:8], s0, s1, big_endian)
        s0, s1 = _wal_checksum(data, s0, s1, big_endian)
        if struct.unpack(">II", head[16:24]) != (s0, s1):
            break
        pending[page_no] = data
        if commit_size:
            committed.update(pending)
            pending.clear()
            db_size = commit_size
        pos += _WAL_FRAME_HEADER + page_size
    return committed, db_size


@dataclass
class Cell:
    rowid: int
    values: list[Value]


@dataclass
class PageImage:
    """The database as pages: the main file with committed WAL frames laid over it."""

    header: Header
    pages: dict[int, bytes]
    problems: list[str] = field(default_factory=list)
    freelist_known: bool = True  # False when the header was rebuilt: its freelist is lost

    @classmethod
    def from_bytes(cls, main: bytes, wal: bytes = b"", header: Header | None = None
                   ) -> PageImage:
        """The pages of `main` with `wal`'s committed frames; `header` replaces a lost one
        (rebuild_header)."""
        rebuilt = header is not None
        header = header or parse_header(main[:100], len(main))
        size = header.page_size
        pages = {n + 1: main[n * size:(n + 1) * size] for n in range(len(main) // size)}
        problems = []
        if len(main) % size:
            problems.append(f"the file ends in a partial page ({len(main) % size} bytes)")
        wal_pages, wal_count = committed_wal_pages(wal, size) if wal else ({}, 0)
        pages.update(wal_pages)
        count = wal_count or header.page_count
        missing = [n for n in range(1, count + 1) if n not in pages]
        if missing:
            problems.append(f"{len(missing)} page(s) are missing from the end of the file")
        if rebuilt:
            problems.append(f"the file's header was unreadable; it was rebuilt from the pages "
                            f"(page size {size})")
        return cls(header, {n: p for n, p in pages.items() if n <= count}, problems,
                   freelist_known=not rebuilt)

    @property
    def usable(self) -> int:
        return self.header.page_size - self.header.reserved

    def page(self, number: int) -> bytes:
        data = self.pages.get(number)
        if data is None or len(data) != self.header.page_size:
            raise PageError(f"page {number} is missing")
        return data

    # ------------------------------------------------------------------ b-tree pages

    def page_type(self, number: int) -> int | None:
        try:
            data = self.page(number)
        except PageError:
            return None
        return data[100 if number == 1 else 0]

    def _cell_offsets(self, number: int) -> tuple[int, list[int]]:
        data = self.page(number)
        base = 100 if number == 1 else 0
        kind = data[base]
        if kind not in (LEAF_TABLE, INTERIOR_TABLE, LEAF_INDEX, INTERIOR_INDEX):
            raise PageError(f"page {number} is not a b-tree page (type byte {kind})")
        n_cells = int.from_bytes(data[base + 3:base + 5], "big")
        head = 8 if kind in (LEAF_TABLE, LEAF_INDEX) else 12
        array_end = base + head + 2 * n_cells
        if array_end > self.usable:
            raise PageError(f"page {number} claims more cells than fit")
        offsets = [int.from_bytes(data[base + head + 2 * i:base + head + 2 * i + 2], "big")
                   for i in range(n_cells)]
        if any(o < array_end or o >= self.usable for o in offsets):
            raise PageError(f"page {number} has a cell pointer outside its content area")
        return kind, offsets

    def children(self, number: int) -> list[int]:
        """Child pages of an interior table page, in key order (right-most last)."""
        kind, offsets = self._cell_offsets(number)
        if kind != INTERIOR_TABLE:
            raise PageError(f"page {number} is not an interior table page")
        data = self.page(number)
        base = 100 if number == 1 else 0
        kids = [int.from_bytes(data[o:o + 4], "big") for o in offsets]
        kids.append(int.from_bytes(data[base + 8:base + 12], "big"))
        return kids

    def leaf_cells(self, number: int, used: set[int]) -> Iterator[Cell | PageError]:
        """The rows of a leaf table page; a cell that does not parse yields its PageError.
        Overflow pages read are added to `used`."""
        kind, offsets = self._cell_offsets(number)
        if kind != LEAF_TABLE:
            raise PageError(f"page {number} is not a leaf table page")
        data = self.page(number)
        for offset in offsets:
            try:
                size, pos = read_varint(data, offset)
                rowid, pos = read_varint(data, pos)
                rowid = _signed(rowid, 64)
                payload = self._payload(data, pos, size, used)
                yield Cell(rowid, decode_record(payload, self.header.encoding))
            except PageError as exc:
                yield exc

    def _payload(self, data: bytes, pos: int, size: int, used: set[int]) -> bytes:
        usable = self.usable
        max_local = usable - 35
        if size <= max_local:
            if pos + size > usable:
                raise PageError("a cell runs past the end of its page")
            return data[pos:pos + size]
        min_local = (usable - 12) * 32 // 255 - 23
        local = min_local + (size - min_local) % (usable - 4)
        if local > max_local:
            local = min_local
        if pos + local + 4 > usable:
            raise PageError("a cell runs past the end of its page")
        parts = [data[pos:pos + local]]
        remaining = size - local
        next_page = int.from_bytes(data[pos + local:pos + local + 4], "big")
        seen: set[int] = set()
        while remaining > 0:
            if next_page == 0 or next_page in seen:
                raise PageError("an overflow chain is broken")
            seen.add(next_page)
            page = self.page(next_page)
            chunk = page[4:4 + min(remaining, usable - 4)]
            parts.append(chunk)
            remaining -= len(chunk)
            next_page = int.from_bytes(page[:4], "big")
        used.update(seen)
        return b"".join(parts)

    # ------------------------------------------------------------------ whole structures

    def walk_table(self, root: int, visited: set[int]) -> tuple[list[Cell], list[str]]:
        """Every row reachable from a table's root page; broken pages are reported and
        skipped. Pages read (b-tree and overflow) are added to `visited`."""
        rows: list[Cell] = []
        problems: list[str] = []
        stack = [root]
        while stack:
            number = stack.pop()
            if number in visited:
                problems.append(f"page {number} is reached twice (a loop in the tree)")
                continue
            visited.add(number)
            try:
                kind = self.page_type(number)
                if kind == INTERIOR_TABLE:
                    stack.extend(reversed(self.children(number)))
                elif kind == LEAF_TABLE:
                    for cell in self.leaf_cells(number, visited):
                        if isinstance(cell, PageError):
                            problems.append(f"page {number}: {cell}")
                        else:
                            rows.append(cell)
                else:
                    raise PageError(f"page {number} is not part of a table (damaged)")
            except PageError as exc:
                problems.append(str(exc))
        return rows, problems

    def freelist(self) -> tuple[set[int], bool]:
        """Pages on the freelist, and whether the whole list could be read."""
        free: set[int] = set()
        if not self.freelist_known:
            return free, False
        trunk = self.header.first_freelist_trunk
        while trunk:
            if trunk in free:
                return free, False
            try:
                data = self.page(trunk)
            except PageError:
                return free, False
            free.add(trunk)
            count = int.from_bytes(data[4:8], "big")
            if 8 + 4 * count > self.usable:
                return free, False
            free.update(int.from_bytes(data[8 + 4 * i:12 + 4 * i], "big") for i in range(count))
            trunk = int.from_bytes(data[:4], "big")
        return free, True
