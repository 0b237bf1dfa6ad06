#!/bin/sh
# The image's entrypoint: migrate once, then become the command (granian, a worker, beat), never as root.
#
# - LUMIKU_MIGRATE (default true) runs `manage.py migrate_locked`: replicas that start together take turns under a
#   PostgreSQL advisory lock, so the migrations are applied once. It runs the start-up checks first (`manage.py
#   check` alone with LUMIKU_MIGRATE=false), so a bad set-up (FLUX_LORA_SCALE outside 0-2, an unreachable Redis)
#   stops here with the reason, before anything serves.
# - The image runs as the `lumiku` user. Started as root anyway (e.g. `docker run --user root`, or volumes whose owner
#   needs fixing), it hands the media folders to that user (LUMIKU_USER) and execs the command as it.
set -eu
cd "$(dirname "$0")/.."

# Prometheus's per-process files (lumiku/metrics.py) start empty with every start of the container.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi

if [ "${LUMIKU_MIGRATE:-true}" = "true" ]; then
    python manage.py migrate_locked
else
    python manage.py check
fi

if [ "$(id -u)" = "0" ]; then
    user="${LUMIKU_USER:-lumiku}"
    for folder in "${MEDIA_ROOT:-/app/media}" "${PRIVATE_MEDIA_ROOT:-/app/private}" ${PROMETHEUS_MULTIPROC_DIR:-}; do
        mkdir -p "$folder" && chown "$user:$(id -gn "$user")" "$folder"
    done
    exec setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups "$@"
fi
exec "$@"
