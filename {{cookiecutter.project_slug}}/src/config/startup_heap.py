"""Long-running processes keep the garbage collector's full passes away from the messages they serve."""

import gc

# Full collections after this many collections of the middle generation (CPython's default: 10).
FULL_COLLECTION_EVERY = 1000


def freeze_startup_heap() -> None:
    """Django, the apps and their modules live as long as the process, yet every full (generation 2)
    collection walks all of them again: in the MQTT handler, some 145,000 objects, 50-90 ms per collection on
    the benchmark's machine, a stall for every message in flight. Frozen objects are never scanned (a full
    collection then took under 2 ms there), and never freed: call this once, when the process has loaded
    what it keeps."""
    gc.collect()
    gc.freeze()


def collect_fully_less_often() -> None:
    """A full collection walks every live object. In the ASGI server holding 1,001 sockets (the benchmark's
    row (f)), each took 140-170 ms and stalled every push in flight: delivery p99 over five runs 43-172 ms
    with CPython's default, 43-72 ms with full collections this much rarer. The price: cyclic garbage that
    outlived the younger collections waits longer to be freed."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)
