"""Pure portfolio logic: the accounting ledger with reservations and the rebalance planner."""
