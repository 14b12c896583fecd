"""Thin Celery tasks: the entry task ``deploy_agent.deploy`` and the pipeline's stages."""
