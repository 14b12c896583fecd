"""What starts and drives a deploy-agent worker against the ECS emulation (``ecs_sandbox``).

``ecs_sandbox`` knows nothing of deploy-agent; this package is where the two meet: ``stack``
(the environment a worker needs for a running sandbox, and the worker subprocess), ``redis_server``
(a private Redis for the broker and the state store), and ``demo`` (``python -m sandbox_harness.demo``).
Like the emulation, it comes with the source checkout and is not part of the deploy-agent wheel.
"""
