"""N idle logged-in clients through Sluice (default 10,000): its RSS before, with them
connected (once they have been quiet for 7 s), and 7 s after they left.

    python3 bench/idle_clients.py PORT SLUICE_PID [N]

Plain asyncio and the MySQL protocol by hand (mysql_native_password, user app/apppass), so
that 10,000 logins take seconds; 1 in 100 clients runs `SELECT 1` before going quiet. Needs
`ulimit -n` above N for this process and for Sluice.
"""
import asyncio
import hashlib
import struct
import sys
import time

USER, PASSWORD = b"app", b"apppass"
CAPS = 0x1 | 0x200 | 0x2000 | 0x8000 | 0x80000  # long pw, 4.1, transactions, secure, plugin


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def read_packet(r):
    head = await r.readexactly(4)
    n = head[0] | head[1] << 8 | head[2] << 16
    return await r.readexactly(n)


def scramble(salt):
    h1 = hashlib.sha1(PASSWORD).digest()
    h2 = hashlib.sha1(salt + hashlib.sha1(h1).digest()).digest()
    return bytes(a ^ b for a, b in zip(h1, h2))


async def login(port, query):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    hs = await read_packet(r)
    pos = hs.index(b"\0", 1) + 1 + 4
    salt = hs[pos:pos + 8]
    pos += 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10
    salt += hs[pos:pos + 12]
    body = struct.pack("<IIB23x", CAPS, 1 << 24, 45) + USER + b"\0"
    body += bytes([20]) + scramble(salt) + b"mysql_native_password\0"
    w.write(struct.pack("<I", len(body))[:3] + b"\x01" + body)
    ok = await read_packet(r)
    if ok[0] != 0:
        raise RuntimeError(f"login failed: {ok[3:]!r}")
    if query:
        q = b"\x03SELECT 1"
        w.write(struct.pack("<I", len(q))[:3] + b"\x00" + q)
        for _ in range(5):  # column count, definition, EOF, row, EOF
            await read_packet(r)
    return w


async def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    before = rss_mib(pid)
    started = time.time()
    writers = []
    for batch in range(0, n, 500):
        writers += await asyncio.gather(
            *(login(port, i % 100 == 0) for i in range(batch, min(n, batch + 500)))
        )
    took = time.time() - started
    await asyncio.sleep(7)  # quiet clients release their buffers after 1 s, trimmed within 5 s
    held = rss_mib(pid)
    for w in writers:
        w.close()
    writers.clear()
    await asyncio.sleep(7)
    after = rss_mib(pid)
    print(f"idle clients: {n} logged in ({took:.1f} s); Sluice RSS {before:.1f} MiB before, "
          f"{held:.1f} MiB with them ({(held - before) * 1024 / n:.1f} KiB each), "
          f"{after:.1f} MiB after they left")


if __name__ == "__main__":
    asyncio.run(main())
