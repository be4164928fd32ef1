"""Running the Faust worker as a process: metrics endpoint, topics, then the Faust event loop."""

from __future__ import annotations

import logging

import faust
from prometheus_client import start_http_server

from pvwatch.config import Settings
from pvwatch.metrics import REGISTRY
from pvwatch.rulebook import load_rule_parameters
from pvwatch.streams.app import build_app
from pvwatch.streams.topics import ensure_topics
from pvwatch.streams.writer import tune_gc


def run_worker(settings: Settings, *, loglevel: str = "warning") -> None:
    """Blocks until SIGTERM/SIGINT; Faust then stops the agent, which commits its offsets."""
    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    tune_gc()  # the writer process does the same
    load_rule_parameters(settings.rules_file, settings.rsi_file)  # a bad rules file fails now, before the broker
    settings.db.parent.mkdir(parents=True, exist_ok=True)  # the store and Faust's data directory live there
    start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=REGISTRY)
    ensure_topics(settings.kafka_bootstrap, settings.partitions)
    app = build_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False, override_logging=False)
    worker.execute_from_commandline()
