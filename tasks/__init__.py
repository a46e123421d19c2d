"""The tool's task namespaces; `fabfile.py` assembles them."""
