"""The conflating mailbox used across threads (it is built on ``queue.SimpleQueue``): a getter
blocked on it, a putter racing it. Nothing but quotes is dropped, trades keep their volume,
everything else arrives once and in order."""

from __future__ import annotations

import threading
from decimal import Decimal

from cryptoj.models.market import Bar, Quote, Trade
from cryptoj.runtime.mailbox import ConflatingInbox
from tests.stubs import bar, quote
from tests.test_live_path import told, trade

N = 3000


def test_a_racing_putter_and_a_blocked_getter_lose_nothing_but_quotes() -> None:
    inbox = ConflatingInbox()
    got: list[object] = []
    done = threading.Event()

    def take() -> None:
        while True:
            msg = inbox.get().message.msg
            if isinstance(msg, Bar) and msg.close == Decimal(-1):
                done.set()
                return
            got.append(msg)

    taker = threading.Thread(target=take, daemon=True)
    taker.start()
    for i in range(N):
        product = ("BTC-USD", "ETH-USD")[i % 2]
        inbox.put(told(quote(product, bid=str(i + 1), ask=str(i + 2))))
        inbox.put(told(trade("1", str(i + 1), product)))
        if i % 10 == 0:
            inbox.put(told(bar(close=str(i + 1))))
    inbox.put(told(bar(close="-1")))
    assert done.wait(10), "the getter did not finish"
    bars = [m.close for m in got if isinstance(m, Bar)]
    assert bars == [Decimal(i + 1) for i in range(0, N, 10)]  # all of them, in order
    volume = sum((m.quantity for m in got if isinstance(m, Trade)), Decimal(0))
    assert volume == N  # merged trades keep their volume
    quotes = [m for m in got if isinstance(m, Quote)]
    assert len(quotes) + inbox.conflated == N
    assert inbox.empty() and inbox.qsize() == 0
    for product in ("BTC-USD", "ETH-USD"):  # each product's quotes arrive newest-last
        bids = [q.bid for q in quotes if q.product == product]
        assert bids == sorted(bids)
