"""The cyclic garbage collector set for a long-running server, not for a script.

With Python's defaults (collect the youngest generation every 700 new container objects, the
oldest after every 10 collections of the middle one) a server taking in JSON messages spends
about a tenth of its CPU in the collector, and every second or two stops every thread for a
full collection that walks each object alive: the modules, the flows and their compiled
expressions, every run waiting for a worker thread. On a 2-core machine such a pause took
60-100 ms, longer than a whole request, and it was the tail of the webhook latency.

A long-running process calls `settle` once it is built. Then:

- what exists at that moment (modules, flows, clients) is moved out of the collector's sight
  (`gc.freeze`): it lives as long as the process, and full collections no longer walk it;
- the youngest generation is collected every 10,000 new container objects instead of 700, so
  a message's parsed body and envelope are mostly freed by reference counting before a
  collection ever sees them, and fewer of them are promoted to the older generations;
- the oldest generation is collected after 100 collections of the middle one instead of 10
  (and, as always, only once it grew by a quarter): cyclic garbage that reached it is freed a
  little later, never kept.

``FLOWRUN_GC_TUNING=false`` keeps Python's defaults (to compare, or for a memory-starved host).
"""

from __future__ import annotations

import gc

#: (youngest, middle, oldest) collection thresholds of a settled process
THRESHOLDS = (10_000, 20, 100)


def settle(enabled: bool = True) -> None:
    """Freeze what the process holds after start-up and set the thresholds (see above);
    nothing when *enabled* is false."""
    if not enabled:
        return
    gc.collect()  # the garbage of start-up goes now, not into the frozen set
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
