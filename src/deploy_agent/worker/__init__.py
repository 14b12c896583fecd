"""The worker: Celery app, settings, logging, signals and the metrics endpoint."""
