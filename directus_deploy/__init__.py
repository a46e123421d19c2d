"""directus-deploy: deploy a Directus project to production over SSH without losing data.

The layers, from the bottom: core, host, engines, state, runtimes and traffic, flows, tasks
(docs/architecture.md draws them and says which may import which).
"""
