"""Trader-facing alerts: the price-alert sensor (the morning digest is scheduled in monitoring)."""

import dagster as dg

from volaris_assets.alerts.sensors import price_alerts_sensor

defs = dg.Definitions(sensors=[price_alerts_sensor])
