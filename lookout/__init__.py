"""Lookout's composition root: the only package that imports the stages (crawler, alerts, rules)
and wires them together. It holds the configuration (``config``) and the loading of what it
points at (``loaders``), the crawl→rules→alerts junction (``pipeline``), the command line
(``cli``, ``commands``, ``context``), the long-running service (``service``, composed of
``scheduler``, ``crawljobs``, ``snapshots``, ``delivery``, ``metrics``, ``maintenance`` and
``lock``), ``lookout status`` (``status``) and the demo. Nothing happens at import time."""

__version__ = "0.1.0"
