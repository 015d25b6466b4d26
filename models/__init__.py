"""custody's contract and storage: the pure domain, the wire schemas, the tables and migrations.

Importing this package connects to nothing. ``models.domain`` imports only the standard
library (and the e-mail syntax checker); SQLAlchemy lives in ``tables``, ``store``,
``database`` and ``migrations`` alone.
"""
