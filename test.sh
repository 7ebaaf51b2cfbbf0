#!/usr/bin/env bash
# Every test of TaptPlatform in one command, on a fresh Debian 12 machine with only the .NET SDK and Node.js:
# installs what the tests need when it is missing, then runs `dotnet test` on the solution.
#
#   ./test.sh                      everything (CI runs exactly this)
#   ./test.sh --filter 'FullyQualifiedName~Browser'    extra arguments go to `dotnet test`
#   ./test.sh --install-only       install what is missing, run nothing
#
# What it installs when missing (nothing is installed twice):
#   Debian packages (apt-get; as root, or through sudo):
#     dataset-fashion-mnist   the dataset of the acceptance and evaluation tests
#     chromium, fonts-dejavu-core   the headless browser Playwright drives in the console tests (it downloads none)
#     nodejs, npm             only if npm is missing
#   npm packages, into .tools/ in this repository (never global):
#     azurite@3.37.0          the Azure Storage emulator the Orleans and gateway tests start on free ports
#     @microsoft/signalr      the official SignalR JavaScript client, for the Node-based live-events tests
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

say() { printf '\033[1m[test]\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

install_only=false
if [ "${1:-}" = --install-only ]; then install_only=true; shift; fi

command -v dotnet >/dev/null || die "the .NET SDK is required (https://dot.net)"

need=()
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
command -v npm >/dev/null || need+=(nodejs npm)
[ -x /usr/bin/chromium ] || need+=(chromium fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=()
  elif command -v sudo >/dev/null; then sudo=(sudo)
  else die "the tests need the Debian packages: ${need[*]}; install them as root (apt-get install ${need[*]}) or run this as root"
  fi
  say "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

npm_install() { # npm_install FOLDER PACKAGE
  say "installing $2 into $1"
  npm install --prefix "$1" --no-audit --no-fund --loglevel=error "$2" >/dev/null
}
[ -x .tools/azurite/node_modules/.bin/azurite ] || npm_install .tools/azurite azurite@3.37.0
[ -d .tools/signalr/node_modules/@microsoft/signalr ] || npm_install .tools/signalr @microsoft/signalr@10.0.11

$install_only && exit 0

# The run scripts must at least parse (run.sh is also run end to end by the console test, RunShConsoleTests).
for script in run.sh test.sh infra/local-cluster.sh infra/docker/entrypoint.sh tests/fault/*.sh tests/load/run-load.sh; do
  bash -n "$script"
done
for script in tests/fault/*.cjs; do node --check "$script"; done

started=$SECONDS
dotnet test TaptPlatform.sln "$@"
say "all tests passed in $((SECONDS - started)) s"
