"""``custody``: the one command line, and the composition root that wires the parts."""
