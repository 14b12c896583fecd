#!/bin/sh
# Publish a DeployToECSTask with nothing but redis-cli, the way a publisher in any language can:
# one JSON envelope (Celery's message protocol v2) pushed on the "deploy" list of the broker DB.
# Usage: publish.sh MESSAGE.json [REDIS_URL_HOST PORT BROKER_DB]  ->  prints the task id.
# Read the result back from the result DB:  GET celery-task-meta-<task id>  ({"status", "result"}).
set -eu
message_file=$1
host=${2:-127.0.0.1}; port=${3:-6379}; db=${4:-0}
task_id=$(cat /proc/sys/kernel/random/uuid)
request=$(cat "$message_file")
# The body is [args, kwargs, embed]: no args, one keyword argument "request", no callbacks.
body=$(printf '[[], {"request": %s}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]' "$request" | base64 -w0)
envelope=$(cat <<JSON
{"body": "$body", "content-encoding": "utf-8", "content-type": "application/json",
 "headers": {"lang": "py", "task": "deploy_agent.deploy", "id": "$task_id", "root_id": "$task_id",
             "parent_id": null, "group": null, "retries": 0, "eta": null, "expires": null,
             "timelimit": [null, null], "shadow": null, "argsrepr": "", "kwargsrepr": "", "origin": "publish.sh"},
 "properties": {"correlation_id": "$task_id", "reply_to": "", "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": "deploy"}, "priority": 0,
                "body_encoding": "base64", "delivery_tag": "$task_id"}}
JSON
)
redis-cli -h "$host" -p "$port" -n "$db" LPUSH deploy "$envelope" >/dev/null
echo "$task_id"
