#!/usr/bin/env bash
# moto.sh start|stop|status — the local AWS stand-in (S3, SNS, SQS) for tests and the demo.
# start: reuses a server already answering on MOTO_HOST:MOTO_PORT, else starts moto_server and
# records its pid so that stop ends only what start began.
set -euo pipefail
host=${MOTO_HOST:-127.0.0.1}
port=${MOTO_PORT:-4566}
dir=${MOTO_STATE_DIR:-$(pwd)/.moto}
pidfile="$dir/moto.pid"
url="http://$host:$port"

ready() { curl -fsS -o /dev/null "$url/moto-api/" 2>/dev/null; }

case "${1:-}" in
start)
  if ready; then echo "moto: already serving $url"; exit 0; fi
  if ! command -v moto_server >/dev/null 2>&1; then
    echo "moto: moto_server not found on PATH. Install Python moto 5.2.1 with its server extra" >&2
    echo "      (pip install 'moto[server]==5.2.1') and run this again." >&2
    exit 1
  fi
  mkdir -p "$dir"
  moto_server -H "$host" -p "$port" >"$dir/moto.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do
    if ready; then echo "moto: serving $url (pid $(cat "$pidfile"))"; exit 0; fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "moto: did not become ready on $url; log:" >&2
  tail -20 "$dir/moto.log" >&2 || true
  exit 1
  ;;
stop)
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
    echo "moto: stopped"
  fi
  ;;
status)
  if ready; then echo "moto: serving $url"; else echo "moto: not serving $url"; exit 1; fi
  ;;
*)
  echo "usage: $0 start|stop|status" >&2
  exit 2
  ;;
esac
