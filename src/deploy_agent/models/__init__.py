"""The public contracts: the ``DeployToECSTask`` message and the ``DeploymentResult`` (DESIGN 2 and 3).

Other packages import from here, never from the modules inside; ``tests/models/test_schema.py``
guards this list.
"""

from deploy_agent.models.analysis import AnalysisGate
from deploy_agent.models.container import ContainerDefinition, ContainerHealthCheck, PortMapping
from deploy_agent.models.ecr import EcrSpec
from deploy_agent.models.parsing import parse_request, request_json_schema
from deploy_agent.models.request import (
    BuildSpec,
    DeployToECSTask,
    HealthCheckSpec,
    ImageSpec,
    RollbackSpec,
    Strategy,
)
from deploy_agent.models.result import (
    AnalysisMeasurement,
    DeploymentResult,
    Diagnostics,
    ErrorInfo,
    Outcome,
    RollbackInfo,
    StageRecord,
    StoppedTask,
    ZeroDowntime,
)
from deploy_agent.models.strategy import CanaryStep, LoadBalancerSpec
from deploy_agent.models.task_definition import TaskDefinitionSpec
from deploy_agent.strategies.blue_green import BlueGreenStrategy
from deploy_agent.strategies.canary import CanaryStrategy
from deploy_agent.strategies.linear import LinearStrategy
from deploy_agent.strategies.rolling import RollingStrategy

__all__ = [
    "AnalysisGate",
    "AnalysisMeasurement",
    "BlueGreenStrategy",
    "BuildSpec",
    "CanaryStep",
    "CanaryStrategy",
    "ContainerDefinition",
    "ContainerHealthCheck",
    "DeployToECSTask",
    "DeploymentResult",
    "Diagnostics",
    "EcrSpec",
    "ErrorInfo",
    "HealthCheckSpec",
    "ImageSpec",
    "LinearStrategy",
    "LoadBalancerSpec",
    "Outcome",
    "PortMapping",
    "RollbackInfo",
    "RollbackSpec",
    "RollingStrategy",
    "StageRecord",
    "StoppedTask",
    "Strategy",
    "TaskDefinitionSpec",
    "ZeroDowntime",
    "parse_request",
    "request_json_schema",
]
