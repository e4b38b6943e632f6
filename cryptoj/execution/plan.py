"""The fixed part of a split order: its plan, its children's ids, and their journal records.

A :class:`SplitPlan` is journalled once, before the first child, and never changes: a restart
with another configuration still finishes the parent under the plan it started with.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from cryptoj.execution.splitting import ProductRules, SplitPolicy
from cryptoj.models.orders import OrderStatus, SubmitOrder, floor_to


def child_id(parent_id: str, n: int) -> str:
    """The client order id of child ``n`` (from 1) of ``parent_id``."""
    return f"{parent_id}-c{n}"


def child_index(parent_id: str, client_order_id: str) -> int | None:
    """``n`` when ``client_order_id`` is child ``n`` of ``parent_id``, else None."""
    prefix = f"{parent_id}-c"
    tail = client_order_id[len(prefix) :]
    if not client_order_id.startswith(prefix) or not tail.isdigit() or tail.startswith("0"):
        return None
    return int(tail)


class SplitPlan(msgspec.Struct, frozen=True, kw_only=True):
    """Everything fixed when a parent starts; journalled once, as JSON, before its first child."""

    order: SubmitOrder
    policy: SplitPolicy
    rules: ProductRules
    start_ns: int

    @property
    def quantity(self) -> Decimal:
        """The parent's quantity floored to the base increment (a finer rest is never sent)."""
        return floor_to(self.order.quantity, self.rules.base_increment)

    @property
    def deadline_ns(self) -> int:
        """End of the last slot: no child is sent from then on."""
        return self.start_ns + self.policy.slots * self.policy.child_interval_ns

    def slot_at(self, now_ns: int) -> int:
        """The slot ``now_ns`` falls in (0 before the start; ``slots`` or more at the deadline)."""
        return max(0, (now_ns - self.start_ns) // self.policy.child_interval_ns)

    def slot_start(self, k: int) -> int:
        """When slot ``k`` starts."""
        return self.start_ns + k * self.policy.child_interval_ns

    def to_json(self) -> str:
        """The journal form (Decimals as strings)."""
        return msgspec.json.encode(self).decode()

    @classmethod
    def from_json(cls, text: str) -> SplitPlan:
        """Decode :meth:`to_json` output; ValueError naming the problem if it is not one."""
        try:
            return msgspec.json.decode(text, type=cls)
        except msgspec.ValidationError as e:
            raise ValueError(f"not a split plan: {e}") from e


class ChildRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A child as journalled in the ``orders`` table (see :meth:`from_row`)."""

    client_order_id: str
    quantity: Decimal
    status: OrderStatus
    filled_quantity: Decimal
    created_ts: int
    reason: str = ""

    @classmethod
    def from_row(cls, row: dict[str, object]) -> ChildRecord:
        """From a :meth:`cryptoj.journal.Journal.orders` row."""
        return cls(
            client_order_id=str(row["client_order_id"]),
            quantity=Decimal(str(row["quantity"])),
            status=OrderStatus(str(row["status"])),
            filled_quantity=Decimal(str(row["filled_quantity"])),
            created_ts=int(str(row["created_ts"])),
            reason=str(row.get("reason") or ""),
        )


__all__ = ["ChildRecord", "SplitPlan", "child_id", "child_index"]
