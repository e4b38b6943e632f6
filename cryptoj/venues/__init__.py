"""Venues: the places orders go to.

``paper``  :class:`~cryptoj.venues.paper.PaperExchange`, a pure, deterministic, thread-safe
           simulated exchange (matching engine, balances, orders) that plays the role of a
           remote venue inside the process. It is the source of truth for the paper account.
"""
