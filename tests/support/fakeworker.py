"""A stand-in crawl worker for the service side's tests: speaks ``lookout.workerproto`` on stdin
and stdout like ``lookout.worker`` but crawls nothing. What it does with an order depends on the
source's name: ``ok-…``, ``partial-…``, ``empty-…``, ``failed-…`` finish at once (after
``?sleep=S`` of the feed URL) with that result; ``hang-…`` never finishes; ``die-…`` SIGKILLs the
worker; ``retire-…`` finishes ok, then the worker retires and ends. ``FAKE_WORKER_SILENT=1``: no
heartbeats (a hung worker). Each order it takes is appended, with its pid, to the file
``FAKE_WORKER_LOG`` names.

Plain JSON and the standard library only: it starts in milliseconds (dozens are started per
test run); the service's side still parses what it says with the real models."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

_lock = threading.Lock()


def send(**message: object) -> None:
    with _lock:
        sys.stdout.buffer.write(json.dumps(message).encode() + b"\n")
        sys.stdout.buffer.flush()


def crawl(order: dict) -> None:
    source = order["source"]
    name = source["name"]
    kind = name.split("-")[0]
    sleep = float(parse_qs(urlsplit(source["feed"]).query).get("sleep", ["0"])[0])
    with Path(os.environ["FAKE_WORKER_LOG"]).open("a") as log:
        log.write(f"{os.getpid()} {name}\n")
    if kind == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "hang":
        return
    time.sleep(sleep)
    result = "ok" if kind == "retire" else kind
    send(kind="finished", id=order["id"], source=name, result=result, outcome=result, seconds=sleep, new=1)
    if kind == "retire":  # as after crawl.max_crawls_per_worker crawls: say so, then end
        send(kind="retiring", reason="1 crawls done (crawl.max_crawls_per_worker: 1)")
        time.sleep(0.2)
        os._exit(0)


def main() -> None:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG, as lookout.worker does
    send(kind="ready", pid=os.getpid())
    if not os.environ.get("FAKE_WORKER_SILENT"):
        def beat() -> None:
            while True:
                send(kind="alive", rss=1, crawls_done=0, running=0)
                time.sleep(0.2)
        threading.Thread(target=beat, daemon=True).start()
    for line in sys.stdin.buffer:
        order = json.loads(line)
        if order["kind"] == "stop":
            return
        threading.Thread(target=crawl, args=(order,), daemon=True).start()


if __name__ == "__main__":
    main()
