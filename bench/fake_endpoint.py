"""A fake OpenAI-compatible model server for the pool benchmark: answers every Hanoi prompt of a run
correctly (from a table built with the task's oracle), after a fixed latency, so many at a time.

    python bench/fake_endpoint.py --port 8101 --disks 12 --latency 0.05 --concurrent 8
It prints "ready <base_url>" once it listens. It stands in for a model server to measure routing, not a model.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from maker import load_task  # noqa: E402
from tests.backends.fault_server import FaultServer, oracle_replies  # noqa: E402


async def serve(args: argparse.Namespace) -> None:
    server = FaultServer(oracle_replies(load_task("hanoi", disks=args.disks)), latency_s=args.latency,
                         max_concurrent=args.concurrent)
    server.port = args.port
    await server.start()
    print("ready", server.base_url, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--disks", type=int, default=12)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrent", type=int, default=8)
    asyncio.run(serve(parser.parse_args()))
