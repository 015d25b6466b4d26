"""The worker process: Celery app factory, per-process runtime, consumer, relay, health."""
