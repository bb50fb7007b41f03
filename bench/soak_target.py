"""A delivery target for bench/soak.py that survives being killed: it records what it received in a file.

    python bench/soak_target.py --port PORT --log FILE

Every request is answered 200 after one line `SEQ LENGTH CRC32\\n` is appended to FILE, where SEQ is the request's
`X-Soak-Seq` header (-1 when absent), LENGTH the body length and CRC32 the body's checksum. The line is written
with a single os.write on an O_APPEND descriptor before the answer goes out, so a SIGKILL can lose an answer (the
sender then delivers again: at-least-once) but never a line for a request that was answered, and two lines never
interleave. The soak script tails the file. A raw asyncio server, like tests/delivery/target.py, because it is cheap
and keeps the bytes exact; it accepts Content-Length and chunked bodies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import zlib

MAX_HEAD = 1024 * 1024


async def read_body(reader: asyncio.StreamReader, headers: list[tuple[bytes, bytes]]) -> bytes:
    coding = b",".join(v for n, v in headers if n == b"transfer-encoding").lower()
    if b"chunked" in coding:
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, if any
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = next((int(v) for n, v in headers if n == b"content-length"), 0)
    return await reader.readexactly(length) if length else b""


class Target:
    def __init__(self, log_fd: int) -> None:
        self.log_fd = log_fd

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head[:-4].split(b"\r\n")
                headers = []
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    headers.append((name.strip().lower(), value.strip()))
                body = await read_body(reader, headers)
                seq = next((v for n, v in headers if n == b"x-soak-seq"), b"-1")
                if not seq.lstrip(b"-").isdigit():
                    seq = b"-1"
                os.write(self.log_fd, b"%s %d %d\n" % (seq, len(body), zlib.crc32(body)))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    fd = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    target = Target(fd)
    # reuse_address: a restart after SIGKILL must get the same port back while old connections sit in TIME_WAIT.
    server = await asyncio.start_server(target.handle, "127.0.0.1", args.port, reuse_address=True, limit=MAX_HEAD)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
