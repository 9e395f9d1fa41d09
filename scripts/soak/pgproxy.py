#!/usr/bin/env python3
"""A TCP proxy in front of PostgreSQL that the soak (scripts/soak.sh) can cut and restore.

    pgproxy.py LISTEN_PORT TARGET_HOST:TARGET_PORT

SIGUSR1 cuts: every open link is closed at once (both sides) and new connections are accepted
and closed immediately, as if the database host went away and refused connections.
SIGUSR2 restores: new connections are forwarded again. Each change is logged with a Unix
timestamp on standard output. The same idea as the Rust CutProxy of the e2e suite
(tests/tests/e2e/resilience.rs).
"""

import asyncio
import signal
import sys
import time

LINKS = set()
CUT = False
# Connections accepted since the last stats line (the report shows them per time bucket: a storm
# of new connections is a pool dropping and reopening its connections).
ACCEPTED = 0


def log(msg):
    print(f"{time.time():.3f} {msg}", flush=True)


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError, OSError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def handle(client_reader, client_writer, target):
    global ACCEPTED
    ACCEPTED += 1
    if CUT:
        client_writer.transport.abort()
        return
    host, port = target
    try:
        server_reader, server_writer = await asyncio.open_connection(host, port)
    except OSError:
        client_writer.transport.abort()
        return
    link = (client_writer, server_writer)
    LINKS.add(link)
    try:
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
    finally:
        LINKS.discard(link)


def cut():
    global CUT
    CUT = True
    n = len(LINKS)
    for client_writer, server_writer in list(LINKS):
        client_writer.transport.abort()
        server_writer.transport.abort()
    LINKS.clear()
    log(f"cut ({n} links closed)")


def restore():
    global CUT
    CUT = False
    log("restored")


async def stats():
    global ACCEPTED
    while True:
        await asyncio.sleep(2)
        log(f"stats accepted={ACCEPTED} open={len(LINKS)}")
        ACCEPTED = 0


async def main():
    listen_port = int(sys.argv[1])
    host, port = sys.argv[2].rsplit(":", 1)
    target = (host, int(port))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, cut)
    loop.add_signal_handler(signal.SIGUSR2, restore)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, target), "127.0.0.1", listen_port, backlog=512
    )
    log(f"listening on 127.0.0.1:{listen_port} -> {host}:{port}")
    stats_task = asyncio.create_task(stats())
    async with server:
        await stop
    stats_task.cancel()
    log("stopped")


if __name__ == "__main__":
    asyncio.run(main())
