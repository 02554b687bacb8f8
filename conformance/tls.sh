#!/usr/bin/env bash
# TLS toward clients and caching_sha2_password full authentication with PyMySQL.
#   tls.sh WORK PRIMARY_PORT PROXY_PORT
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$1"; direct="$2"; proxy="$3"
python3 -c "import pymysql, cryptography" 2>/dev/null || python3 -m pip install -q pymysql cryptography
# the backend account of the user Sluice knows only by its caching_sha2_password hash
mariadb -h 127.0.0.1 -P "$direct" -u sluice_admin -psluice_admin_pw -e \
  "CREATE USER IF NOT EXISTS 'sha2app'@'%' IDENTIFIED BY 'sha2pass'; GRANT SELECT ON *.* TO 'sha2app'@'%'"
# a CA that did not sign Sluice's certificate: the server certificate itself
if python3 "$here/tls_drivers.py" "$proxy" "$work/sandbox/tls/ca.pem" "$work/sandbox/tls/server.pem" \
    >"$work/tls.log" 2>&1; then
  echo "tls: $(grep -c '^ok' "$work/tls.log") checks passed (PyMySQL: VERIFY_CA, VERIFY_IDENTITY, caching_sha2 over TLS and RSA)"
else
  cat "$work/tls.log"
  exit 1
fi
