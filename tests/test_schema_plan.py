"""Reading `directus schema apply --dry-run`, and what its deletions may cost: fast checks."""

from directus_deploy.flows.schema import parse_plan

PLAN = """The following changes will be applied:

Collections:
  - Delete old_notes
Fields:
  - Create tags.name
  - Delete articles.body
  - Delete articles.summary
Relations:
  - Delete articles.author
"""


def test_deletions_are_read_by_kind():
    plan = parse_plan(PLAN)
    assert plan.deletions == ["collection old_notes", "field articles.body", "field articles.summary",
                              "relation articles.author"]
    assert "Create field tags.name" in plan.changes


def test_only_what_is_dropped_may_lose_rows():
    fields_only = parse_plan("Fields:\n  - Delete articles.body\n  - Delete articles.summary\n")
    assert fields_only.allowed_losses() == {"directus_fields": 2}  # articles itself keeps every row
    losses = parse_plan(PLAN).allowed_losses()
    assert losses["old_notes"] is None and losses["directus_fields"] is None  # a whole collection goes
    assert losses["directus_collections"] == 1 and "articles" not in losses
