"""Print the message's JSON Schema: ``python -m deploy_agent.models > schemas/deploy_to_ecs_task.v1.json``."""

from deploy_agent.models.parsing import render_json_schema

if __name__ == "__main__":
    print(render_json_schema(), end="")
