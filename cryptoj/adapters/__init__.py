"""Venue adapters: the code that speaks a venue's wire protocol.

``coinbase/`` holds the Coinbase Advanced Trade market-data websocket client: pure protocol
modules (parsing, book, sequence tracking, backoff, circuit breaker) and the threads that run
them (:mod:`cryptoj.adapters.coinbase.connection`, :mod:`cryptoj.adapters.coinbase.manager`).
"""
