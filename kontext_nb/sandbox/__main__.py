"""``python -m kontext_nb.sandbox``: serve a fal-compatible sandbox until Ctrl-C.

Point a client at the printed URL instead of https://queue.fal.run (and rest.fal.ai /
v3.fal.media for uploads). Any non-empty ``Authorization: Key ...`` is accepted unless
--require-key is given.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence

from . import SandboxConfig, start
from .faults import KINDS, ROUTES, parse_cli

EXAMPLES = """\
fault rules (repeat --fault; checked in order, the first that fires wins):
  ROUTE:KIND[:count=N|:rate=P]   or   ROUTE:sequence=KIND,ok,KIND,...
  routes: {routes}
  kinds:  {kinds}  (ok = no fault, in sequences)
  e.g. --fault status:429:count=2 --fault submit:503:rate=0.1 --fault status:sequence=429,ok,502

control API (no auth): GET /_sandbox/stats, GET /_sandbox/requests/ID, POST /_sandbox/faults,
POST /_sandbox/config, POST /_sandbox/reset, GET|POST /_sandbox/webhooks
"""


def build_parser() -> argparse.ArgumentParser:
    defaults = SandboxConfig()
    parser = argparse.ArgumentParser(
        prog="python -m kontext_nb.sandbox",
        description="A local server that speaks fal's queue protocol for FLUX.1 Kontext (placeholder images).",
        epilog=EXAMPLES.format(routes=", ".join(ROUTES), kinds=", ".join(KINDS)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default=defaults.host, help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=8765, help="port to bind, 0 for any free one (default %(default)s)")
    parser.add_argument("--public-url", help="base of the URLs the server returns (default http://HOST:PORT)")
    parser.add_argument("--workers", type=int, default=defaults.workers, help="inference slots (default %(default)s)")
    parser.add_argument(
        "--queue-delay", type=float, default=defaults.queue_delay, help="seconds before a request may start"
    )
    parser.add_argument(
        "--inference-time",
        type=float,
        default=defaults.inference_time,
        help="seconds per request (default %(default)s)",
    )
    parser.add_argument(
        "--image-scale", type=float, default=defaults.image_scale, help="output size factor (default %(default)s)"
    )
    parser.add_argument(
        "--keepalive", type=float, default=defaults.keepalive_seconds, help="seconds between stream keep-alive comments"
    )
    parser.add_argument(
        "--retry-after", type=int, default=defaults.retry_after, help="Retry-After seconds on injected 429s"
    )
    parser.add_argument(
        "--slow-seconds", type=float, default=defaults.slow_seconds, help="delay of the 'slow' fault (seconds)"
    )
    parser.add_argument("--no-stream", action="store_true", help="answer 405 on the status stream (polling only)")
    parser.add_argument("--fault", action="append", default=[], metavar="RULE", help="a fault rule (see below)")
    parser.add_argument("--fault-seed", type=int, help="seed of the fault RNG, for repeatable rate faults")
    parser.add_argument("--require-key", metavar="KEY", help="accept only this key (default: any non-empty key)")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rules = [parse_cli(text) for text in args.fault]
    except ValueError as exc:
        parser.error(str(exc))
    try:
        server = start(
            host=args.host,
            port=args.port,
            public_url=args.public_url,
            workers=args.workers,
            queue_delay=args.queue_delay,
            inference_time=args.inference_time,
            image_scale=args.image_scale,
            keepalive_seconds=args.keepalive,
            retry_after=args.retry_after,
            slow_seconds=args.slow_seconds,
            stream=not args.no_stream,
            faults=rules,
            fault_seed=args.fault_seed,
            require_key=args.require_key,
        )
    except OSError as exc:
        print(f"kontext_nb sandbox: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    # Ctrl-C (and SIGTERM) end the wait below even when started where SIGINT is ignored (a background job)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"kontext_nb sandbox listening on http://{host}:{server.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
