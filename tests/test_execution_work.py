"""VenueWork: the ExecutionActor's queue of lookups and reconciliation calls (pure)."""

from __future__ import annotations

from cryptoj.execution.work import VenueWork, WorkItem


def kinds(work: VenueWork) -> list[str]:
    out: list[str] = []
    while True:
        work.want_step()
        item = work.next()
        if item is None:
            return out
        out.append(item.kind if item.kind != "resolve" else f"resolve {item.client_order_id}")


def test_a_pass_follows_its_lookups_and_one_step_message_is_on_its_way_at_a_time() -> None:
    work = VenueWork()
    assert work.reconcile("start", 5, [("a", "BTC-USD"), ("b", "ETH-USD")])
    work.resolve("a", "BTC-USD")  # already queued: once
    work.then("started")
    assert work.want_step() and not work.want_step()  # one message until it arrives
    assert work.next() == WorkItem("resolve", client_order_id="a", product="BTC-USD")
    assert work.want_step()
    assert work.next() == WorkItem("resolve", client_order_id="b", product="ETH-USD")
    assert work.next() == WorkItem("pass", why="start", since_ns=5)
    work.pass_continues("start")  # the pass's next call comes before "started"
    assert kinds(work) == ["more", "started"]
    assert work.next() is None and not work.want_step()


def test_one_pass_at_a_time_an_interval_pass_is_dropped_another_runs_after() -> None:
    work = VenueWork()
    assert work.reconcile("start", None)
    assert not work.reconcile("interval", None)
    assert not work.reconcile("user channel sequence gap", None)
    assert kinds(work) == ["pass"]
    assert work.pass_over() == "user channel sequence gap"  # the actor queues it now
    assert work.reconcile("user channel sequence gap", None)
    assert kinds(work) == ["pass"]
    assert work.pass_over() is None


def test_the_queue_waits_while_a_call_of_the_pass_is_in_flight() -> None:
    work = VenueWork()
    work.reconcile("start", None)
    work.then("started")
    assert work.want_step() and work.next() == WorkItem("pass", why="start")
    work.pass_continues("start")
    work.pause()  # the call runs on the venue's thread
    assert not work.want_step()
    work.resume()  # VenueCallDone
    assert kinds(work) == ["more", "started"]


def test_a_lookup_handed_to_the_venues_thread_is_applied_before_anything_else() -> None:
    work = VenueWork()
    work.reconcile("start", None, [("a", "BTC-USD"), ("b", "ETH-USD")])
    work.then("started")
    assert work.want_step()
    lookup = work.next()
    assert lookup == WorkItem("resolve", client_order_id="a", product="BTC-USD")
    work.read_back(lookup)  # the read runs on the venue's thread: the queue waits
    assert not work.want_step()
    work.resolve("c", "BTC-USD", force=True)  # an adoption asked for meanwhile: first
    work.resume()  # VenueCallDone
    assert work.want_step()
    assert work.next() == WorkItem("read", client_order_id="a", product="BTC-USD")
    assert kinds(work) == ["resolve c", "resolve b", "pass", "started"]
