"""Child process of the flow-control test: stream N bytes through a slow reader.

A Thor server writes ``total`` bytes to a Thor client on 127.0.0.1, honouring
``pause`` events; the client pauses its read side for a few milliseconds
every ``slow_every`` bytes.  Prints one JSON line: bytes and CRC-32 on each
side, peak RSS growth (VmHWM) and how often the writer was paused.

Every chunk is a fresh bytes object (copied from a pattern stamped with its
sequence number), so a writer that ignored ``pause`` would really hold the
data in memory, and a reordering would change the checksum.
"""

from __future__ import annotations

import json
import struct
import sys
import time
import zlib

import thor
from thor.loop import Loop
from thor.testing import run_for

CHUNK = 64 * 1024


def vm_hwm_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def main(total: int, slow_every: int, pause_s: float) -> None:
    loop = Loop()
    loop.fatal_errors = True
    pattern = bytearray(bytes(range(256)) * (CHUNK // 256))
    state = {"sent": 0, "crc_sent": 0, "got": 0, "crc_got": 0, "pauses": 0, "max_buffered": 0}
    next_slow = [slow_every]
    server = thor.TcpServer("127.0.0.1", 0, loop=loop)

    def on_server_conn(conn: thor.TcpConnection) -> None:
        paused = [False]

        def pump() -> None:
            while not paused[0] and state["sent"] < total:
                struct.pack_into("!Q", pattern, 0, state["sent"])
                chunk = bytes(pattern[: min(CHUNK, total - state["sent"])])
                state["crc_sent"] = zlib.crc32(chunk, state["crc_sent"])
                state["sent"] += len(chunk)
                conn.write(chunk)
                state["max_buffered"] = max(state["max_buffered"], conn.write_buffer_size)
            if state["sent"] >= total:
                conn.close()

        def on_pause(now_paused: bool) -> None:
            paused[0] = now_paused
            if now_paused:
                state["pauses"] += 1
            else:
                pump()

        conn.on("pause", on_pause)
        pump()

    def on_client_conn(conn: thor.TcpConnection) -> None:
        def on_data(data: bytes) -> None:
            state["crc_got"] = zlib.crc32(data, state["crc_got"])
            state["got"] += len(data)
            if state["got"] >= next_slow[0]:
                next_slow[0] += slow_every
                conn.pause(True)
                loop.schedule(pause_s, conn.pause, False)

        def on_close() -> None:
            conn.close()
            loop.stop()

        conn.on("data", on_data)
        conn.on("close", on_close)

    server.on("connect", on_server_conn)
    client = thor.TcpClient(loop)
    client.on("connect", on_client_conn)
    before = vm_hwm_kib()
    started = time.monotonic()
    client.connect("127.0.0.1", server.port, connect_timeout=2)
    run_for(loop, 60)
    elapsed = time.monotonic() - started
    state["hwm_growth_kib"] = vm_hwm_kib() - before
    state["seconds"] = round(elapsed, 2)
    print(json.dumps(state))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
