"""``keidrive collect``: the devices' MQTT messages into DuckDB.

``Collector`` subscribes to ``keidrive/+/#`` on a broker (``Broker``, or the
``EmbeddedBroker`` on loopback), checks every message against the uplink's
schema (``schema.parse``) and stores each once (``store``). docs/uplink.md
describes the messages and the tables.
"""

from .broker import EmbeddedBroker
from .collector import Broker, Collector

__all__ = ["Broker", "Collector", "EmbeddedBroker"]
