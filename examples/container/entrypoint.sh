#!/bin/sh
# Container entrypoint: register the command given as arguments (the image's
# CMD) in the Consul agent (or in etcd with REGISTRY=etcd and
# ETCDCTL_ENDPOINTS), health-check it over HTTP, and drain + deregister it on
# SIGTERM before passing the signal on.
#
# exec: proxyless-register replaces this shell, so it is PID 1 and receives
# `docker stop`'s SIGTERM itself. PROXYLESS_REGISTER lets the same script run
# outside the image (see README.md); inside it, the CLI is on PATH.
set -eu
exec ${PROXYLESS_REGISTER:-proxyless-register} \
  --registry "${REGISTRY:-consul}" \
  --name "${SERVICE_NAME:-web}" \
  --port "${PORT:-8080}" \
  --check-http /health \
  --drain-delay "${DRAIN_DELAY:-1s}" \
  -- "$@"
