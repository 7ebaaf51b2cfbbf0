#!/bin/sh
# silo | gateway | tapt [arguments]. In a container the silo advertises the pod/container address.
set -e
what=${1:-silo}; [ $# -gt 0 ] && shift
if [ -z "${ORLEANS__ADVERTISEDIP:-}" ]; then
  ORLEANS__ADVERTISEDIP=$(hostname -i 2>/dev/null | awk '{print $1}'); export ORLEANS__ADVERTISEDIP
fi
case "$what" in
  silo) exec dotnet /app/silo/TaptPlatform.Silo.dll "$@" ;;
  gateway) exec dotnet /app/gateway/TaptPlatform.Gateway.dll "$@" ;;
  tapt) exec dotnet /app/cli/tapt.dll "$@" ;;
  *) exec "$what" "$@" ;;
esac
