"""deploy-agent: a queue-consuming worker that deploys container services to AWS ECS.

Public surface (guarded by ``tests/test_public_api.py``):

- :class:`DeployToECSTask` - the message agents publish (schema_version 1).
- :class:`DeploymentResult` - what ``AsyncResult.get()`` returns for ``deploy_agent.deploy``.
- :class:`Outcome` - the terminal outcomes.
- :class:`DeployError` - the root of every error the project raises.
"""

from deploy_agent.core.errors import DeployError
from deploy_agent.models import DeploymentResult, DeployToECSTask, Outcome

__all__ = ["DeployError", "DeployToECSTask", "DeploymentResult", "Outcome", "__version__"]

__version__ = "0.1.0"
