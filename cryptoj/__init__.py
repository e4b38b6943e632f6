"""cryptoj: a supervised actor daemon for Coinbase Advanced Trade (paper by default).

Layout:
    models/       immutable message types (msgspec frozen Structs, Decimal money)
    actors/       one actor per file; thin shells around the pure modules below
    supervision/  OTP-style supervisor, child specs, restart intensity, the tree
    runtime/      the two runtimes (threaded pykka, deterministic single-thread)
    strategies/   pure strategy logic      risk/       pure risk maths and limits
    portfolio/    pure accounting ledger   venues/     paper exchange (matching engine)
    marketdata/   bundled recorded data and its loader
    trace/        message trace recorder and the trace CLI
"""

__version__ = "0.1.0"
