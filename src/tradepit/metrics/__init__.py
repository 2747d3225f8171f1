"""The venue's metrics, for Prometheus: each process kind's families in a module of its own
(`gateway`: requests, orders, stream clients; `stage`: batches, commits, lag; `valkey`: the
server's memory and AOF), each in a registry of its own, so that a process exports only its own
and a test can make several."""
