"""The subscribing side: consume events from the events exchange, deduplicated."""
