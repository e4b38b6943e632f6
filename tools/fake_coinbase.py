"""Local fake Coinbase Advanced Trade on loopback: market-data WSS, public REST, trading REST and
the user channel, with faults.

    python tools/fake_coinbase.py [--port 8444] [--alt-port 8446] [--control-port 0]
        [--step-s 0.1] [--deep-levels 0] [--every gap:5 --every disconnect:20 ...] [--seconds N]
        [--generate-key Ed25519 --key-out var/fake-key.json | --api-key-name N --api-public-key F]
        [--balance USD=100000 --balance BTC=1] [--taker-fee 0.006 --maker-fee 0.004]
        [--order-fault-rate 0.1 --fault-seed 7 --fault-kinds rest_429 drop_after_commit]

Serves ``wss://127.0.0.1:PORT`` with a self-signed certificate generated at start (SAN
``IP:127.0.0.1``, ``DNS:localhost``; written to ``--cert-dir``, default a temporary directory;
the client trusts it through ``feed.coinbase.ca_file``) and streams the bundled recorded data
(:mod:`cryptoj.adapters.coinbase.sim`: recorded top of book and bars, **modelled** depth and
trades) as Coinbase frames: ``subscriptions`` acks, ``heartbeats`` every second (counter as a
number, or a string with ``--counter-string``), ``l2_data`` snapshot then updates, ``ticker``,
``market_trades`` (snapshot of recent trades, then updates). One recorded minute per
``--step-s`` seconds (0 = as fast as the client reads). Behaves like the real server where the
protocol notes know how: one channel per subscribe, subscribe within ``--subscribe-deadline-s``
(5) or be disconnected, ``authentication failure`` for unknown channels (``heartbeat``) and bad
JWTs, ``too many L2 streams requested in a single session`` above ``--max-l2-products`` (16),
per-connection ``sequence_num`` from 0; public channels need no JWT (one that is sent is
checked); ``ticker_batch`` updates every 5 s; sizes as clean decimal strings. The same port
answers the public REST reads the feed uses (``/api/v3/brokerage/market/products/{id}/ticker``,
``/market/product_book``, ``/time``), the history calls ``cryptoj data download`` makes
(``/market/products/{id}/candles`` from the recorded bars, at most 350 a call, newest first,
every granularity; ``ticker`` with ``start``/``end``: modelled trades; see
``cryptoj/adapters/coinbase/fake/history.py``) and, with a JWT when a key is registered, the private
``/product_book`` and ``/best_bid_ask``. Every REST answer carries ``x-ratelimit-limit``,
``-remaining`` and ``-reset`` headers (reported, not enforced). The control port is a free one
unless ``--control-port`` is given; the first stdout line (JSON) names it (``control_url``).

Trading (``cryptoj/adapters/coinbase/fake/``: ``exchange.py``, ``rest_api.py``,
``user_channel.py``): the private REST API (``POST /orders``, ``/orders/batch_cancel``,
``GET /orders/historical/{id|batch|fills}``, ``/accounts``, ``/products``,
``/transaction_summary``) and the ``user`` websocket channel, matched against the recorded book.
With a key (``--generate-key`` writes a CDP key file ``{"name", "privateKey"}`` with mode 0600
for the client; or register an existing public key) every private call needs a valid JWT (else
401 ``Unauthorized``); without one, authentication is off.

Faults (``--every KIND:SECONDS`` repeats one; ``POST /fault`` on the control port injects one,
body ``{"kind": ..., ...}``; ``GET /state`` returns counters):

============================ =================================================================
``disconnect`` mode=clean|drop close with 1000, or drop the TCP connection (RST, no close frame)
``gap`` count=N              drop the next N level2 update frames and skip their sequence numbers
``stall`` seconds=S what=all|heartbeats  the open connections send nothing (or no heartbeats)
                             for S seconds; new connections are served normally
``duplicate`` count=N        send the next N data frames twice
``reorder`` count=N          swap the next N pairs of data frames
``error`` message=TEXT       send ``{"type":"error","message":TEXT}``
``burst`` steps=N            advance N recorded steps at once (a slow consumer falls behind)
``subscribe_timeout`` count=N the next N connections' subscribes are ignored (the deadline hits)
``outage`` seconds=S listener=0|1  refuse websocket upgrades (HTTP 503) on a port for S seconds
``rest_outage`` seconds=S    REST answers 503 with an HTML body for S seconds
``rest_429`` body=html|json  the next private call gets 429 with x-ratelimit-* and Retry-After
``public_429`` retry_after=S body=json|html  the next history call (candles, ticker with
                             start/end) gets 429 with Retry-After (``count=N``: the next N)
``public_5xx`` status=503|500|502|504  the next history call gets that status (``count=N``)
``rest_5xx`` status=503|500 commit=false|true  503/500 (after processing the call when commit)
``rest_delay`` seconds=S commit=before|after  answer S seconds late (processed before/after)
``order_reject`` reason=R    a create answers success:false (INSUFFICIENT_FUND), creates nothing
``null_config``              a create succeeds with ``"order_configuration": null``
``drop_after_commit``        the call is processed, then the TCP connection is reset
``user_disconnect`` mode=drop|clean  drop the user-channel connections now
``user_replay`` orders=K     the next user subscribe also gets every past update of the open
                             orders and the K last finished ones
``order_fault_rate`` rate=P seed=N kinds=[...]  random REST faults on order calls
============================ =================================================================

The REST faults take ``count=N`` and ``endpoint=any|create|cancel|get|list|fills|accounts|
products`` (see ``cryptoj/adapters/coinbase/fake/rest_faults.py``). ``GET /orders-summary``
on the control port lists every order and fill, the orders per client_order_id and balances.

A connection whose backlog exceeds ``--max-queue`` steps, or whose socket does not take data
within 5 s, is closed with 1008 ``slow consumer`` (with ``--step-s 0`` the data source waits
for the reader instead).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptoj.adapters.coinbase.fake import FakeCoinbase
from cryptoj.adapters.coinbase.fake.auth import generate_api_key, write_key_file
from cryptoj.adapters.coinbase.fake.rest_faults import REQUEST_KINDS

# -- CLI ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--port", type=int, default=8444, help="WSS + REST port (0 = any free port)")
    ap.add_argument("--alt-port", type=int, default=None, help="a second websocket host (failover)")
    ap.add_argument(
        "--control-port",
        type=int,
        default=0,
        help="plain-HTTP fault control port (default 0: a free port, printed as control_url)",
    )
    ap.add_argument("--data", default="coinbase-1m-2018-04")
    ap.add_argument("--products", nargs="*", default=None)
    ap.add_argument(
        "--step-s", type=float, default=0.1, help="wall seconds per recorded minute (0 = max)"
    )
    ap.add_argument("--heartbeat-s", type=float, default=1.0)
    ap.add_argument("--subscribe-deadline-s", type=float, default=5.0)
    ap.add_argument("--max-l2-products", type=int, default=16)
    ap.add_argument(
        "--depth", type=int, default=10, help="book levels per side (1 recorded + modelled)"
    )
    ap.add_argument(
        "--deep-levels", type=int, default=0, help="static far levels per side (big snapshots)"
    )
    ap.add_argument("--counter-string", action="store_true", help="heartbeat counters as strings")
    ap.add_argument("--max-queue", type=int, default=2000)
    ap.add_argument(
        "--send-buffer",
        type=int,
        default=0,
        help="SO_SNDBUF of each connection, bytes (0 = the OS default, autotuned up to MBs)",
    )
    ap.add_argument(
        "--cert-dir", default=None, help="where to write the certificate (default: temp)"
    )
    ap.add_argument(
        "--api-key-name",
        "--jwt-key-name",
        dest="key_name",
        default=None,
        help="the registered CDP key name (organizations/.../apiKeys/...)",
    )
    ap.add_argument(
        "--api-public-key",
        "--jwt-public-key",
        dest="public_key",
        default=None,
        help="PEM file of its public key: private calls and subscribes need a valid JWT",
    )
    ap.add_argument(
        "--generate-key",
        choices=["ES256", "Ed25519"],
        default=None,
        help="make a fresh key pair and register it (needs --key-out)",
    )
    ap.add_argument("--key-out", default=None, help="where to write the CDP key file (mode 0600)")
    ap.add_argument("--jwt-skew-s", type=float, default=5.0, help="allowed clock skew for nbf")
    ap.add_argument(
        "--balance",
        action="append",
        default=[],
        metavar="CUR=AMOUNT",
        help="starting balance (repeatable; default USD=100000)",
    )
    ap.add_argument("--taker-fee", default="0.006")
    ap.add_argument("--maker-fee", default="0.004")
    ap.add_argument(
        "--order-fault-rate",
        type=float,
        default=0.0,
        help="probability of a random REST fault per order call (create/cancel/get/list)",
    )
    ap.add_argument("--fault-seed", type=int, default=None)
    ap.add_argument("--fault-kinds", nargs="*", default=None, choices=list(REQUEST_KINDS))
    ap.add_argument(
        "--every",
        action="append",
        default=[],
        metavar="KIND:SECONDS",
        help="inject a fault periodically",
    )
    ap.add_argument(
        "--seconds", type=float, default=0.0, help="stop after this long (0 = until SIGTERM)"
    )
    args = ap.parse_args(argv)
    key_name, pub, key_file = args.key_name, None, None
    if args.generate_key:
        if not args.key_out or args.public_key:
            ap.error("--generate-key needs --key-out (and no --api-public-key)")
        key = generate_api_key(args.generate_key, key_name)
        key_name, pub = key.name, key.public_pem
        key_file = str(write_key_file(key, args.key_out))
    elif args.public_key:
        pub = Path(args.public_key).read_text()
    if (key_name is None) != (pub is None):
        ap.error("give --api-key-name and --api-public-key together (or --generate-key)")
    balances = {}
    for spec in args.balance or ["USD=100000"]:
        cur, _, amount = spec.partition("=")
        try:
            balances[cur.strip().upper()] = Decimal(amount)
        except InvalidOperation:
            ap.error(f"--balance {spec!r}: expected CUR=AMOUNT")
    try:
        fake = FakeCoinbase(
            data=args.data, products=args.products, port=args.port, alt_port=args.alt_port,
            control_port=args.control_port, step_s=args.step_s, heartbeat_s=args.heartbeat_s,
            subscribe_deadline_s=args.subscribe_deadline_s, max_l2_products=args.max_l2_products,
            depth=args.depth, deep_levels=args.deep_levels, counter_string=args.counter_string,
            max_queue=args.max_queue, send_buffer=args.send_buffer, cert_dir=args.cert_dir,
            jwt_key_name=key_name,
            jwt_public_key=pub, jwt_skew_s=args.jwt_skew_s, balances=balances,
            taker_fee=args.taker_fee, maker_fee=args.maker_fee,
            order_fault_rate=args.order_fault_rate, fault_seed=args.fault_seed,
            fault_kinds=args.fault_kinds,
        ).start()  # fmt: skip
    except (ValueError, ArithmeticError) as e:  # bad balance, fee rate or key
        ap.error(str(e))
    info = {
        "ws_url": fake.ws_url,
        "rest_url": fake.rest_url,
        "ca_file": fake.ca_file,
        "control_url": fake.control_url,
        "control_port": fake.control_port,
    }
    if args.alt_port is not None:
        info["alt_ws_url"] = fake.alt_ws_url
    if key_name is not None:
        info["key_name"] = key_name
    if key_file is not None:
        info["key_file"] = key_file
    done = threading.Event()  # handlers first: a SIGTERM right after the line is orderly
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(json.dumps(info), flush=True)
    periodic = []
    for spec in args.every:
        kind, _, secs = spec.partition(":")
        periodic.append([kind, float(secs or 10), time.monotonic() + float(secs or 10)])
    deadline = time.monotonic() + args.seconds if args.seconds else None
    while not done.wait(0.1):
        now = time.monotonic()
        for entry in periodic:
            if now >= entry[2]:
                entry[2] = now + entry[1]
                fake.inject(str(entry[0]))
        if deadline is not None and now >= deadline:
            break
    print(json.dumps(fake.state()["counts"]), flush=True)
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
