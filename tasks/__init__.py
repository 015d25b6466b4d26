"""Command handlers (plain functions over a unit of work) and their thin Celery adapters.

Only ``tasks.celery_tasks`` imports Celery; everything else here is framework-free.
"""
