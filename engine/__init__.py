"""flowrunner's engine: the flow language, loader, executors, stores and the `flowrun` command."""

__version__ = "0.1.0"
#: the distribution's name on the package index (``pipx install flowrunner-ipaas``)
DISTRIBUTION = "flowrunner-ipaas"
