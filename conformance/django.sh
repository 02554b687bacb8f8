#!/usr/bin/env bash
# Django's own test suite (from its source release on PyPI) on the MySQL backend, for a set
# of apps that exercise the ORM against the database, direct and through Sluice.
#   django.sh WORK PRIMARY_PORT PROXY_PORT
set -euo pipefail
work="$1"; direct="$2"; proxy="$3"
version="${DJANGO_VERSION:-5.2.19}"
labels="${DJANGO_TESTS:-basic transactions contenttypes_tests select_for_update get_or_create model_fields queries aggregation expressions lookup backends prefetch_related many_to_one update delete bulk_create db_functions timezones serializers}"
src="$work/django-$version"
if [ ! -d "$src/tests" ]; then
  python3 -m pip download -q --no-deps --no-binary :all: -d "$work" "django==$version"
  tar -xzf "$work/django-$version.tar.gz" -C "$work"
fi
python3 -c "import MySQLdb, asgiref, sqlparse" 2>/dev/null || python3 -m pip install -q mysqlclient asgiref sqlparse

run() { # port label -> "ran failed"
  cat >"$src/tests/sluice_$2.py" <<PY
DATABASES = {
    alias: {"ENGINE": "django.db.backends.mysql", "HOST": "127.0.0.1", "PORT": $1,
            "USER": "app", "PASSWORD": "apppass", "NAME": "dj_" + alias,
            "TEST": {"NAME": "test_dj_$2_" + alias, "CHARSET": "utf8mb4"}}
    for alias in ("default", "other")
}
SECRET_KEY = "sluice-conformance"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False
PY
  # shellcheck disable=SC2086
  (cd "$src/tests" && PYTHONPATH="$src" timeout 900 python3 runtests.py --settings="sluice_$2" \
      --parallel 1 --noinput $labels >"$work/django-$2.log" 2>&1) || true
  grep -E "^(ERROR|FAIL):" "$work/django-$2.log" | sort >"$work/django-$2.failed" || true
  local ran; ran="$(awk '/^Ran [0-9]+ tests/ {print $2}' "$work/django-$2.log" | tail -1)"
  echo "${ran:-0} $(wc -l <"$work/django-$2.failed")"
}
read -r dr df < <(run "$direct" direct)
read -r sr sf < <(run "$proxy" sluice)
echo "django: $((sr - sf)) passed, $sf failed (direct: $((dr - df)) passed, $df failed)"
gaps="$(comm -13 "$work/django-direct.failed" "$work/django-sluice.failed")"
if [ "$sr" -ne "$dr" ] || [ "$dr" -eq 0 ] || [ -n "$gaps" ]; then
  echo "  fails through Sluice only:"; echo "$gaps" | head -20 | sed 's/^/    /'
  exit 1
fi
