"""The legacy SDK's clock and calendar calls, run by tests/e2e/test_legacy_sdk.py with
.venv-legacy's python against a gateway on the NYSE's calendar.

Usage: clock.py '{"url", "key_id", "secret_key", "start", "end"}'. Prints one JSON object.
"""

from __future__ import annotations

import json
import sys

from alpaca_trade_api.rest import REST

args = json.loads(sys.argv[1])
api = REST(args["key_id"], args["secret_key"], base_url=args["url"], api_version="v2")
clock = api.get_clock()
days = api.get_calendar(start=args["start"], end=args["end"])
print(
    json.dumps(
        {
            "timestamp": clock.timestamp.isoformat(),
            "is_open": clock.is_open,
            "next_open": clock.next_open.isoformat(),
            "next_close": clock.next_close.isoformat(),
            "days": [
                {
                    "date": day.date.date().isoformat(),
                    "open": str(day.open),
                    "close": str(day.close),
                }
                for day in days
            ],
        }
    )
)
