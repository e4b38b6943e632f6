"""The emergency programme's pure logic: what to unwind first, how to slice it, when to recover.

============================  ===================================================================
module                        what it decides
============================  ===================================================================
``priority``                  risk contribution (size × volatility × correlation) and the targets
``queue``                     the priority queue the PortfolioActor works through
``book``                      the PortfolioActor's unwind state: plan, queue, slices in flight
``slicing``                   slice size against visible depth and participation; the deadline
``response``                  the graduated response level, its triggers and automatic recovery
``monitors``                  equity drawdown, error rate and latency; the portfolio's report
``emergency``                 flattening through the guardian's own venue client (tree down)
``report``                    unwinding and recovery figures of a run, from the journal
============================  ===================================================================

The actors only wire these together: the ShutdownActor decides the programme
(:mod:`cryptoj.actors.shutdown`), the PortfolioActor executes it with check-and-reserve
(:mod:`cryptoj.actors.portfolio`). Operator documentation: ``docs/operations.md``.
"""
