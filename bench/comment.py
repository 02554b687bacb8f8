"""Point selects through a proxy under callgrind, bare or with a sqlcommenter-style tag.

    python3 bench/comment.py PORT PID EVENTS TAGGED

Connects (the login is not measured), warms up, switches callgrind's instrumentation of
process PID on, runs EVENTS point selects (TAGGED = 1: each with a 128-byte tag such as
ORMs and tracing libraries add), switches it off. Uses mysqlclient or PyMySQL.
"""
import random
import subprocess
import sys

try:
    import MySQLdb as driver
except ImportError:
    import pymysql as driver

TAG = (
    "/* controller='users',action='show',framework='django',"
    "traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01' */ "
)


def run(cur, n, tagged):
    for _ in range(n):
        sql = "SELECT c FROM sbtest1 WHERE id=%d" % random.randint(1, 10000)
        cur.execute(TAG + sql if tagged else sql)
        cur.fetchall()


def main():
    port, pid, events, tagged = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    conn = driver.connect(host="127.0.0.1", port=int(port), user="app", password="apppass",
                          database="sbtest")
    cur = conn.cursor()
    run(cur, 200, tagged)
    subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
    run(cur, events, tagged)
    subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
    conn.close()


if __name__ == "__main__":
    main()
