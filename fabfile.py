"""This repository's own fabfile, for its tests, benchmarks and demo hosts: the same collection a
Directus project's fabfile imports (`directus-deploy init` writes that one; see the README).
"""

from directus_deploy.tasks import ns  # noqa: F401 - the collection fab loads
