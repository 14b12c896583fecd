# deploy-agent worker image: `docker compose up` (see docker-compose.yml) or
#   docker build -t deploy-agent . && docker run --rm deploy-agent worker --metrics-port 9100
# A worker runs Docker builds through the engine it is given (DOCKER_HOST or a mounted
# /var/run/docker.sock) and talks to AWS with the usual AWS_* variables or an instance/task role.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user with a fixed uid, so mounted volumes and the metrics dir can be owned by it.
RUN groupadd --system --gid 10001 deploy \
 && useradd --system --uid 10001 --gid deploy --home-dir /home/deploy --create-home \
      --shell /usr/sbin/nologin deploy

# Only what the package build needs (.dockerignore keeps tests, the venv and sandbox state out).
WORKDIR /opt/deploy-agent
COPY pyproject.toml README.md ./
COPY src/ src/
RUN pip install . && rm -rf /opt/deploy-agent/src /opt/deploy-agent/build

# prometheus-client multiprocess mode: the prefork children write their samples here and the
# worker serves the aggregate once. The worker wipes it at start; it must be writable by the user.
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/metrics \
    DEPLOY_AGENT_METRICS_HOST=0.0.0.0 \
    DEPLOY_AGENT_LOG_FORMAT=json
RUN mkdir -p /tmp/metrics && chown deploy:deploy /tmp/metrics

USER deploy
WORKDIR /home/deploy
EXPOSE 9100

# SIGTERM is Celery's warm shutdown: stop taking messages, let running stages finish within the
# soft-shutdown timeout, requeue the rest. Give the container a longer grace period than that
# (compose: stop_grace_period 60s; ECS: stopTimeout).
STOPSIGNAL SIGTERM
ENTRYPOINT ["deploy-agent"]
CMD ["worker", "--metrics-port", "9100"]
