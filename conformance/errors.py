"""Errors Sluice sends itself, as mysqlclient (libmariadb / libmysqlclient based) shows them.

A client-library code (2000-2999) received from a server reads as "malformed packet" in
libmariadb and the message is lost, so Sluice uses server-range codes. Starts two Sluices of
its own: one in front of a stopped backend, one in front of a TCP forwarder to the primary
that the script cuts (reset) while a locking read runs.

    errors.py SLUICE_BIN PRIMARY_PORT WORK_DIR
"""
import os
import socket
import subprocess
import sys
import threading
import time

import MySQLdb

BIN, PRIMARY, WORK = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_sluice(name, backend_port):
    port, admin = free_port(), free_port()
    cfg = os.path.join(WORK, f"errors-{name}.toml")
    with open(cfg, "w") as f:
        f.write(f'''[listen]
address = "127.0.0.1:{port}"
[admin]
address = "127.0.0.1:{admin}"
[[users]]
name = "app"
password = "apppass"
[[backends]]
name = "db0"
address = "127.0.0.1:{backend_port}"
role = "primary"
''')
    log = open(os.path.join(WORK, f"errors-{name}.log"), "w")
    proc = subprocess.Popen([BIN, "run", "--config", cfg], stdout=log, stderr=log)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"errors: Sluice ({name}) did not start; see {log.name}")


def connect(port):
    return MySQLdb.connect(host="127.0.0.1", port=port, user="app", password="apppass")


class Forwarder(threading.Thread):
    """Forwards to the primary until cut: then resets its connections (as a middlebox or
    an abortive close would) and refuses new ones."""

    def __init__(self):
        super().__init__(daemon=True)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.conns = []

    def run(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", PRIMARY))
            self.conns.append(client)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass

    def cut(self):
        # shutdown wakes the threads blocked on these sockets, so that close really closes
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for c in self.conns:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.shutdown(socket.SHUT_RD)
            time.sleep(0.05)
            c.close()


def expect(what, f, code, text):
    try:
        f()
    except MySQLdb.Error as e:
        got_code, got_text = e.args[0], str(e.args[1]) if len(e.args) > 1 else ""
        ok = got_code == code and text in got_text
        print(f"errors: {what}: ({got_code}, {got_text!r}) {'ok' if ok else 'WRONG'}")
        return ok
    print(f"errors: {what}: no error (expected {code}) WRONG")
    return False


def main():
    ok = True
    procs = []
    try:
        # a backend that is not there
        dead = free_port()
        proc, port = start_sluice("stopped", dead)
        procs.append(proc)
        # (mysqlclient's connect already runs SET NAMES)
        ok &= expect("stopped backend", lambda: connect(port).cursor().execute("SELECT 1"),
                     1429, "Sluice: backend db0 unavailable")
        # a statement lost with its connection
        fwd = Forwarder()
        fwd.start()
        proc, port = start_sluice("lost", fwd.port)
        procs.append(proc)
        c = connect(port)
        cur = c.cursor()
        cur.execute("DROP TABLE IF EXISTS mysqlclient_test.sluice_errors")
        cur.execute("CREATE TABLE mysqlclient_test.sluice_errors (a INT)")
        cur.execute("INSERT INTO mysqlclient_test.sluice_errors VALUES (1)")
        threading.Timer(1.0, fwd.cut).start()
        ok &= expect("statement lost with its connection",
                     lambda: cur.execute("SELECT SLEEP(5) FROM mysqlclient_test.sluice_errors FOR UPDATE"),
                     1927, "Sluice: lost connection to backend db0")
    finally:
        for p in procs:
            p.terminate()
            p.wait()
    sys.exit(0 if ok else 1)


main()
