#!/bin/sh
# PORT is given by the scheduler (ECS sandbox); 8080 otherwise.
PORT="${PORT:-8080}"
case "$MODE" in
  crash) echo "fatal: configuration missing" >&2; exit 3 ;;
  unhealthy) rm -f /www/health ;;
esac
exec httpd -f -p "127.0.0.1:${PORT}" -h /www
