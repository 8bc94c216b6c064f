"""Cyclic garbage collector settings for a long-running server.

Rules: what the server makes per media message (chunks, events, SharedMessage, GOP entries)
holds no reference cycles and is freed by reference counting; but those that live a while (a
GOP, the shared log) push CPython's young-generation counter past its default threshold (700
net allocations) many times a second on a busy edge, and every collection of the older
generations walks every object of every connection. `tune()` runs once the server is set up:
it freezes the objects that live as long as the process (modules, config, listeners) out of
collection, and collects the young generation every GEN0 net allocations instead. Cycles
(exception tracebacks, finished greenlets) are still collected, a little later.
"""
import gc

GEN0 = 20000
GEN1, GEN2 = 20, 20


def tune():
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0, GEN1, GEN2)
