"""A process's metrics on a port of their own, for Prometheus: prometheus_client's HTTP server, on
a thread, serving one registry (at any path: /metrics is the one to scrape)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server

__all__ = ["Exporter"]


class Exporter:
    """Serves `registry` on `host`:`port` (0: any free port; `port` then says which) until
    `stop()`. Raises OSError if the port cannot be listened on."""

    def __init__(self, registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> None:
        self._server, self._thread = start_http_server(port, host, registry)
        self.host = host
        self.port: int = self._server.server_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
