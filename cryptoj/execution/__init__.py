"""Execution logic of the ExecutionActor: order splitting (TWAP with a depth limit), pure except
for its driver.

===============  ================================================================================
module           what it holds
===============  ================================================================================
``splitting``    the pure planner: split or not, the size of the next child, product rules
``plan``         what is fixed when a split starts (journalled once), child ids, child records
``parent``       one split order's state machine over its children, and what it reports upstream
``splitter``     all split orders of the actor: start, route child events, cancel, timer
``records``      what a split leaves in the journal, and the rebuild of parents after a restart
``driver``       the ExecutionActor's side: carries out the splitter's actions (journal, venue,
                 portfolio, timers); the only module here that works with an actor context
===============  ================================================================================

README "Order splitting" describes the behaviour with a worked example.
"""
