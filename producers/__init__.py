"""The publishing side: a Python client for upstream systems and the bulk onboarding
command. Needs only the broker; never imports SQLAlchemy or Celery."""

from producers.client import Client, Receipt, Reply

__all__ = ["Client", "Receipt", "Reply"]
