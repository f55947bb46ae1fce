#!/usr/bin/env python3
"""A legitimate client's latency while `techshack serve` is under the attacks of issue 12, on
loopback and bounded: many kept-alive connections from one client, slowloris connections
(headers trickled in), and sign-ups from forged X-Forwarded-For IPv6 /64s.

    benches/serve_abuse.py BINARY [KEEPALIVE] [SLOWLORIS] [FORGED]   (default 520 1500 2000)

Prints, per attack, the legitimate GET /healthz latency (median and worst of 5) and, for the
forged sign-ups, how many confirmation mails were attempted (the log lines) and whether a new
client still gets 200. SMTP points at a closed port: mails fail, which costs serve nothing.

The attacker connects from 127.0.0.1, the legitimate client from 127.0.0.2: another client,
as `serve.max_connections_per_client` tells them apart. `$BENCH_SERVE` is added to `[serve]`
(for instance `max_connections_per_client = 1000000`, to measure without that cap).
"""
import http.client, os, socket, subprocess, sys, tempfile, threading, time, urllib.request, urllib.parse

binary = sys.argv[1]
KEEP = int(sys.argv[2]) if len(sys.argv) > 2 else 520
SLOW = int(sys.argv[3]) if len(sys.argv) > 3 else 1500
FORGED = int(sys.argv[4]) if len(sys.argv) > 4 else 2000

work = tempfile.mkdtemp()
cfg = os.path.join(work, "techshack.toml")
open(cfg, "w").write("""[site]
title = "Bench"
base_url = "https://example.org"
[email]
from = "Bench <bench@example.org>"
unsubscribe_url = "https://news.example.org/unsubscribe?token={token}"
[smtp]
url = "smtp://127.0.0.1:1?tls=none"
timeout_secs = 2
[state]
db = "state.sqlite3"
[serve]
public_url = "https://news.example.org"
trust_forwarded_for = true
""" + os.environ.get("BENCH_SERVE", "") + "\n")
env = dict(os.environ, TECHSHACK_SECRET="bench-secret-0123456789abcdef", TECHSHACK_CONFIG=cfg)
srv = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0"], cwd=work, env=env,
                       stderr=subprocess.PIPE, text=True)
base = None
log = []
def reader():
    global base
    for line in srv.stderr:
        log.append(line)
        if "listening on http://" in line and base is None:
            base = line.strip().split("listening on ")[1]
threading.Thread(target=reader, daemon=True).start()
for _ in range(300):
    if base: break
    time.sleep(0.1)
host, port = base.replace("http://", "").split(":")
port = int(port)

LEGIT = "127.0.0.2"

def legit():
    times = []
    for _ in range(5):
        t = time.monotonic()
        try:
            c = http.client.HTTPConnection(host, port, timeout=60, source_address=(LEGIT, 0))
            c.request("GET", "/healthz")
            r = c.getresponse()
            r.read()
            c.close()
            if r.status != 200:
                raise OSError(f"status {r.status}")
        except Exception as e:
            times.append(float("inf")); continue
        times.append(time.monotonic() - t)
    times.sort()
    return f"median {times[2]*1000:.0f} ms, worst {times[-1]*1000:.0f} ms"

print(f"no attack:                 {legit()}")

socks = []
for _ in range(KEEP):
    # Connections over the cap are closed by the server: the attack goes on regardless.
    try:
        s = socket.create_connection((host, port), timeout=2)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    except socket.timeout:
        break  # the listen queue is full
    except OSError:
        pass
time.sleep(1)
print(f"{KEEP} kept-alive connections: {legit()}")
for s in socks: s.close()
time.sleep(1)

socks = []
for _ in range(SLOW):
    try:
        s = socket.create_connection((host, port), timeout=2)
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        socks.append(s)
    except socket.timeout:
        break  # the listen queue is full
    except OSError:
        pass
def trickle():
    for s in socks:
        try: s.sendall(b"X-a: b\r\n")
        except OSError: pass
trickle()
print(f"{len(socks)} slowloris connections: {legit()}")
for s in socks: s.close()
time.sleep(1)

def forge(lo, hi):
    for i in range(lo, hi):
        body = urllib.parse.urlencode({"email": f"f{i}@example.net"}).encode()
        req = urllib.request.Request(f"{base}/subscribe", data=body, headers={
            "X-Forwarded-For": f"2001:db8:{i >> 16:x}:{i & 0xffff:x}::1"})
        try: urllib.request.urlopen(req, timeout=30).read()
        except Exception: pass
threads = [threading.Thread(target=forge, args=(k * FORGED // 8, (k + 1) * FORGED // 8)) for k in range(8)]
t0 = time.monotonic()
for t in threads: t.start()
time.sleep(0.5)
during = legit()
for t in threads: t.join()
took = time.monotonic() - t0
mails = sum("mailing a confirmation link" in l for l in log)
capped = sum("are spent" in l for l in log)
body = urllib.parse.urlencode({"email": "real@example.net"}).encode()
req = urllib.request.Request(f"{base}/subscribe", data=body, headers={"X-Forwarded-For": "192.0.2.77"})
try:
    code = urllib.request.urlopen(req, timeout=30).status
except urllib.error.HTTPError as e:
    code = e.code
print(f"{FORGED} forged sign-ups in {took:.1f} s: {during}; {mails} mails attempted, {capped} over the budget; a new client then gets {code}")
srv.terminate()
srv.wait(timeout=30)
