"""Deploy a Directus project to production over SSH without losing data.

`fab --list` shows the tasks; `fab -h <task>` explains one. Configuration: .env (see .env.example).
"""

from directus_deploy.tasks import ns  # noqa: F401 - the collection fab loads
