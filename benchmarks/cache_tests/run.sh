#!/bin/sh
# Run the public HTTP cache test suite (npm http-cache-tests, pinned) against
# `thor-gateway --proxy /=<the suite's origin> --cache` (gateway.toml) on loopback, and print its summary.
#
#   benchmarks/cache_tests/run.sh [--failures] [--check] [--varnish | --nginx] [TEST-ID]
#
# --check exits 1 if a required test listed in baseline.txt (the required tests that
# passed when it was written) fails now; .ci/run calls it so when THOR_CACHE_TESTS=1.
#
# Needs node and npm.  The package is installed once under $CACHE_TESTS_HOME
# (default: ${TMPDIR:-/tmp}/thor-cache-tests).  With a TEST-ID, the suite prints that test's
# requests and responses instead (its own debugging output).  Extra gateway flags go in
# $THOR_FLAGS.  The results JSON stays in $CACHE_TESTS_HOME/results.json.
#
# --varnish / --nginx run the suite against Varnish (varnishd, the built-in VCL: RFC
# defaults) or nginx (proxy_cache with nothing but the cache zone and HTTP/1.1 upstream
# connections) in place of thor-gateway, for the baselines of the same machine (the Debian
# packages: apt-get install varnish nginx).
set -eu
VERSION=0.4.5
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
HOME_DIR=${CACHE_TESTS_HOME:-${TMPDIR:-/tmp}/thor-cache-tests}
PACKAGE=$HOME_DIR/node_modules/http-cache-tests
ORIGIN_PORT=${ORIGIN_PORT:-18600}
PROXY_PORT=${PROXY_PORT:-18601}
FAILURES=
TARGET=thor
CHECK=
TEST_ID=
for arg in "$@"; do
  case $arg in
    --failures) FAILURES=--failures ;;
    --check) CHECK="--baseline $HERE/baseline.txt" ;;
    --varnish) TARGET=varnish ;;
    --nginx) TARGET=nginx ;;
    *) TEST_ID=$arg ;;
  esac
done

if ! grep -q "\"version\": \"$VERSION\"" "$PACKAGE/package.json" 2>/dev/null; then
  mkdir -p "$HOME_DIR"
  (cd "$HOME_DIR" && npm install --silent --no-audit --no-fund "http-cache-tests@$VERSION" >/dev/null)
fi

cleanup() {
  [ -n "${ORIGIN_PID:-}" ] && kill "$ORIGIN_PID" 2>/dev/null || true
  [ -n "${PROXY_PID:-}" ] && kill "$PROXY_PID" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

(cd "$PACKAGE" && npm_config_protocol=http npm_config_port=$ORIGIN_PORT \
  npm_config_pidfile="$HOME_DIR/server.pid" exec node server/server.mjs >"$HOME_DIR/origin.log" 2>&1) &
ORIGIN_PID=$!
case $TARGET in
thor)
  sed -e "s/PROXY_PORT/$PROXY_PORT/" -e "s/ORIGIN_PORT/$ORIGIN_PORT/" "$HERE/gateway.toml" \
    >"$HOME_DIR/gateway.toml"
  (cd "$ROOT" && exec python -m thor_gateway -c "$HOME_DIR/gateway.toml" ${THOR_FLAGS:-} \
    >"$HOME_DIR/gateway.log" 2>&1) &
  ;;
varnish)
  rm -rf "$HOME_DIR/varnish"
  varnishd -F -j none -n "$HOME_DIR/varnish" -a "127.0.0.1:$PROXY_PORT" \
    -b "127.0.0.1:$ORIGIN_PORT" -s malloc,64m >"$HOME_DIR/gateway.log" 2>&1 &
  ;;
nginx)
  rm -rf "$HOME_DIR/nginx"
  mkdir -p "$HOME_DIR/nginx/cache"
  sed -e "s|PROXY_PORT|$PROXY_PORT|" -e "s|ORIGIN_PORT|$ORIGIN_PORT|" \
    -e "s|DIR|$HOME_DIR/nginx|g" "$HERE/nginx.conf" >"$HOME_DIR/nginx/nginx.conf"
  nginx -e stderr -c "$HOME_DIR/nginx/nginx.conf" >"$HOME_DIR/gateway.log" 2>&1 &
  ;;
esac
PROXY_PID=$!

# Both listening (bounded: 10 s).
for _ in $(seq 100); do
  if python - "$ORIGIN_PORT" "$PROXY_PORT" <<'PY' 2>/dev/null; then break; fi
import socket, sys
for port in sys.argv[1:]:
    socket.create_connection(("127.0.0.1", int(port)), timeout=0.2).close()
PY
  sleep 0.1
done

cd "$PACKAGE"
if [ -n "$TEST_ID" ]; then
  npm_config_base="http://127.0.0.1:$PROXY_PORT" npm_config_id="$TEST_ID" node --no-warnings cli.mjs
  exit 0
fi
npm_config_base="http://127.0.0.1:$PROXY_PORT" npm_package_config_id= node --no-warnings cli.mjs \
  >"$HOME_DIR/results.json"
node "$HERE/summary.mjs" "$PACKAGE" "$HOME_DIR/results.json" $FAILURES $CHECK
