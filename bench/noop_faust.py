"""A Faust agent that does nothing with its events: the baseline the live path is measured against.

Run by bench_live.py as a separate process with the same Faust settings as the pvwatch worker; prints
`first_last_seconds=<t>` once it has seen `--expect` events.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import faust


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", required=True, help="Comma-separated topics to consume.")
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    app = faust.App("bench-noop", broker=f"kafka://{args.bootstrap}", store="memory://", web_enabled=False,
                    topic_allow_declare=False, broker_session_timeout=4, broker_heartbeat_interval=1,
                    broker_max_poll_records=args.batch, stream_buffer_maxsize=16384, producer_linger=0.005,
                    consumer_auto_offset_reset="earliest", datadir=tempfile.mkdtemp(prefix="bench-noop-"))
    topic = app.topic(*args.topics.split(","), key_serializer="raw", value_serializer="raw")
    seen = {"n": 0, "first": 0.0}

    @app.agent(topic)
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for batch in stream.take_events(args.batch, within=0.05):
            if seen["n"] == 0:
                seen["first"] = time.perf_counter()
            seen["n"] += len(batch)
            if seen["n"] >= args.expect:
                # Faust redirects sys.stdout to its logger: write to the real stdout descriptor.
                os.write(1, f"first_last_seconds={time.perf_counter() - seen['first']:.4f}\n".encode())

    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()


if __name__ == "__main__":
    main()
