"""The `fab` namespaces, one module per namespace, assembled into one collection.

A project's own `fabfile.py` needs only `from directus_deploy.tasks import ns`.
"""

from invoke import Collection

from directus_deploy.tasks import backup, config, deploy, extensions, host, release, rollback

ns = Collection()
ns.add_task(release.release)
ns.add_collection(Collection.from_module(rollback))
for module in (backup, config, deploy, extensions, host):
    ns.add_collection(Collection.from_module(module))
