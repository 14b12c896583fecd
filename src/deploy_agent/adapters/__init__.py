"""The edge: the only package that imports boto3, botocore, docker and requests.

- ``aws``: ``AwsClients`` (lazy, per-process boto3 clients) and ``call``/``aws_call`` (error translation)
- ``ecr``: ``EcrRegistry``, ``RegistryAuth``, ``Repository``, ``registry_for_push``
- ``ecs``: ``EcsApi``, one method per ECS call
- ``docker_builder``: ``DockerBuilder``, ``BuiltImage``
- ``health``: ``HttpProber``

Every third-party error is translated into ``deploy_agent.core.errors`` here, and nowhere else.
Nothing is imported eagerly so that importing one adapter does not load the others' libraries.
"""
