"""TLS and caching_sha2_password through Sluice with PyMySQL (a driver we did not write).

    python3 tls_drivers.py PROXY_PORT CA_PEM WRONG_CA_PEM

Checks: VERIFY_CA and VERIFY_IDENTITY logins (TLS 1.2/1.3 negotiated), a wrong CA refused,
caching_sha2_password full authentication over TLS and over plain TCP (RSA key exchange), a
wrong password refused with 1045. Prints one line per check; exits 1 if any failed.
"""
import sys

import pymysql

port, ca, wrong_ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
failed = 0


def connect(user="app", password="apppass", **kw):
    return pymysql.connect(host="127.0.0.1", port=port, user=user, password=password,
                           connect_timeout=10, **kw)


def check(name, fn, refused_with=None):
    global failed
    try:
        detail = fn()
        ok = refused_with is None
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    except Exception as e:  # noqa: BLE001 - any failure is reported
        ok = refused_with is not None and refused_with in str(e)
        print(f"{'ok  ' if ok else 'FAIL'} {name}: refused ({e!r})")
    failed += not ok


def tls_query(**kw):
    c = connect(**kw)
    assert c._secure, "PyMySQL did not negotiate TLS"
    version = c._sock.version()  # the TLS socket PyMySQL wrapped
    cur = c.cursor()
    cur.execute("SELECT CURRENT_USER()")
    who = cur.fetchone()[0]
    c.close()
    assert version in ("TLSv1.2", "TLSv1.3"), version
    return f"{version}, {who}"


def plain_query(**kw):
    c = connect(**kw)
    assert not c._secure, "PyMySQL negotiated TLS"
    cur = c.cursor()
    cur.execute("SELECT CURRENT_USER()")
    who = cur.fetchone()[0]
    c.close()
    return f"plain TCP, {who}"


verify_ca = {"ssl_ca": ca, "ssl_verify_cert": True, "ssl_verify_identity": False}
verify_identity = {"ssl_ca": ca, "ssl_verify_cert": True, "ssl_verify_identity": True}
check("ssl-mode=VERIFY_CA", lambda: tls_query(**verify_ca))
check("ssl-mode=VERIFY_IDENTITY", lambda: tls_query(**verify_identity))
check("VERIFY_CA with a CA that did not sign Sluice's certificate",
      lambda: tls_query(ssl_ca=wrong_ca, ssl_verify_cert=True), refused_with="CERTIFICATE_VERIFY_FAILED")
sha2 = {"user": "sha2app", "password": "sha2pass"}
check("caching_sha2_password full authentication over TLS",
      lambda: tls_query(**sha2, **verify_ca))
check("caching_sha2_password full authentication over plain TCP (RSA)",
      lambda: plain_query(**sha2, ssl_disabled=True))
check("caching_sha2_password with a wrong password",
      lambda: plain_query(user="sha2app", password="wrong", ssl_disabled=True),
      refused_with="1045")
sys.exit(1 if failed else 0)
