"""The gateway: Alpaca's REST and WebSocket APIs in front of the venue's stages. Stateless:
run as many as you like against one Redis."""

from tradepit.gateway.app import create_app
from tradepit.gateway.server import run_gateway
from tradepit.gateway.service import GatewaySettings

__all__ = ["create_app", "run_gateway", "GatewaySettings"]
