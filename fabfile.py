"""Deploy a Directus project to production over SSH without losing data.

`fab --list` shows the tasks; `fab -h <task>` explains one. Configuration: .env (see .env.example).
"""

from invoke import Collection

from tasks import backup, config, deploy, extensions, host, release, rollback

ns = Collection()
ns.add_task(release.release)
ns.add_collection(Collection.from_module(rollback))
for module in (backup, config, deploy, extensions, host):
    ns.add_collection(Collection.from_module(module))
