#!/usr/bin/env python3
"""Slow-client figures for a portcullis binary: connections held, memory per connection, time to
cut off. Bounded: every scenario stops after --bound seconds; loopback only.

usage: slow_clients.py BINARY [--new-keys] [--n 200] [--bound 15]
--new-keys adds the [limits] keys of issue 18 (a binary without them refuses the config).
"""
import argparse, os, socket, subprocess, sys, tempfile, threading, time

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

class Upstream:
    """Answers /big with an endless 1 GiB body; counts open connections."""
    def __init__(self):
        self.sock = socket.socket(); self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0)); self.sock.listen(512)
        self.port = self.sock.getsockname()[1]; self.open = 0; self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()
    def accept(self):
        while True:
            c, _ = self.sock.accept()
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()
    def serve(self, c):
        with self.lock: self.open += 1
        try:
            c.settimeout(60); head = b""
            while b"\r\n\r\n" not in head:
                d = c.recv(4096)
                if not d: return
                head += d
            if b" /big" in head.split(b"\r\n")[0]:
                c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n")
                chunk = b"x" * 65536; end = time.time() + 60
                while time.time() < end: c.sendall(chunk)
            else:
                c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                c.recv(1)
        except OSError: pass
        finally:
            with self.lock: self.open -= 1
            c.close()

def rss_kib(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1])
    return 0

def fds(pid): return len(os.listdir(f"/proc/{pid}/fd"))

def run_scenario(name, pid, conns, bound, upstream=None):
    base_rss, base_fds = scenario_base
    time.sleep(1.0)
    rss = rss_kib(pid) - base_rss
    held_fds = fds(pid) - base_fds
    # Cut off = the gateway's descriptors back to where they were (the clients never read).
    start = time.time(); cut = None
    while time.time() - start < bound:
        if fds(pid) <= base_fds: cut = time.time() - start; break
        time.sleep(0.1)
    still = max(fds(pid) - base_fds, 0)
    up = f", upstream connections still open {upstream.open}" if upstream else ""
    print(f"{name}: {len(conns)} opened, gateway fds +{held_fds}, rss +{rss} KiB "
          f"({rss * 1024 // max(len(conns), 1)} B/conn); "
          + (f"all cut off {cut + 1.0:.1f}s after opening" if cut is not None
             else f"{still} gateway fds still held after {bound + 1.0:.0f}s") + up)
    for s in conns: s.close()
    time.sleep(0.5)

def main():
    global scenario_base
    ap = argparse.ArgumentParser(); ap.add_argument("binary"); ap.add_argument("--new-keys", action="store_true")
    ap.add_argument("--n", type=int, default=200); ap.add_argument("--bound", type=float, default=15)
    a = ap.parse_args()
    up = Upstream(); port = free_port()
    extra = ('client_write_timeout = "2s"\nclient_idle_timeout = "2s"\n' if a.new_keys else "")
    cfg = f"""[server]
listen = "127.0.0.1:{port}"
default_class = "user"
[limits]
header_read_timeout = "2s"
{extra}[classes.user]
errors = "partner"
[upstreams.app]
url = "http://127.0.0.1:{up.port}"
[[routes]]
path = "/"
class = "user"
upstream = "app"
"""
    d = tempfile.mkdtemp(); path = os.path.join(d, "p.toml"); open(path, "w").write(cfg)
    p = subprocess.Popen([a.binary, "serve", "--config", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try: socket.create_connection(("127.0.0.1", port), 0.2).close(); break
            except OSError: time.sleep(0.1)
        time.sleep(0.5)
        scenario_base = (rss_kib(p.pid), fds(p.pid))
        conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(a.n)]
        run_scenario("silent (nothing sent)", p.pid, conns, a.bound)
        scenario_base = (rss_kib(p.pid), fds(p.pid))
        conns = []
        for _ in range(a.n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"); conns.append(s)
        run_scenario("h2c preface + SETTINGS, then idle", p.pid, conns, a.bound)
        scenario_base = (rss_kib(p.pid), fds(p.pid))
        conns = []
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n"); conns.append(s)
        run_scenario("slow readers (never read a 1 GiB response)", p.pid, conns, a.bound, up)
    finally:
        p.kill(); p.wait(5)

if __name__ == "__main__":
    main()
