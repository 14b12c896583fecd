"""The dry-run plan: ``deploy_agent.plan`` (filled in by the plan work)."""
