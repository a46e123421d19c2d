# Deploys of this Directus project with directus-deploy: `fab --list`, `fab -h <task>`; your own tasks: ns.add_task(...)
from directus_deploy.tasks import ns  # noqa: F401 - the collection fab loads
