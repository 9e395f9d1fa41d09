#!/usr/bin/env python3
"""Seeds the soak's keys through the admin API (scripts/soak.sh).

    seed.py BASE_URL EMAIL PASSWORD LOAD_KEYS QUOTA_KEYS QUOTA OUT_DIR

Signs in, then makes (4 at a time, each minted by the server: argon2id runs there):
- LOAD_KEYS load keys, every one with rate limits and quotas:
  - `std` (90 %): gcra 20/s (burst 40) and a fixed window of 1,200 per minute; 1,000,000 a day;
  - `tight` (8 %): gcra 1/s (burst 2), so the load (about 2 calls/s per key) is partly refused;
  - `smallq` (2 %): gcra 20/s and a daily quota of 150, exhausted a minute or two into the run;
- QUOTA_KEYS `quota-ctl` and QUOTA_KEYS `quota-redis` keys with a daily quota of QUOTA and no
  rate limit (the over-grant probes with Redis up and with Redis down).
Writes OUT_DIR/session (the admin session token), OUT_DIR/keys.jsonl (id, token, group) and
OUT_DIR/verify-bodies.txt (one `POST /v1/verify` body per load key, for `oha -Z`).
"""

import http.client
import json
import os
import sys
import threading
import time
import urllib.parse


def conn_for(base):
    u = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60)


def call(conn, method, path, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = conn.getresponse()
    data = r.read()
    return r.status, (json.loads(data) if data else None)


def main():
    base, email, password, n_load, n_quota, quota, out = sys.argv[1:8]
    n_load, n_quota, quota = int(n_load), int(n_quota), int(quota)
    c = conn_for(base)
    status, login = call(c, "POST", "/v1/auth/login", {"email": email, "password": password})
    if status != 200:
        sys.exit(f"login failed: {status} {login}")
    session = login["token"]
    with open(os.path.join(out, "session"), "w") as f:
        f.write(session)

    specs = []
    n_tight = n_load * 8 // 100
    n_small = n_load * 2 // 100
    for i in range(n_load):
        if i < n_tight:
            group, rules, q = "tight", [{"algorithm": "gcra", "limit": 1, "window_seconds": 1, "burst": 2}], {"daily": 1000000}
        elif i < n_tight + n_small:
            group, rules, q = "smallq", [{"algorithm": "gcra", "limit": 20, "window_seconds": 1, "burst": 40}], {"daily": 150}
        else:
            group = "std"
            rules = [
                {"algorithm": "gcra", "limit": 20, "window_seconds": 1, "burst": 40},
                {"algorithm": "fixed_window", "limit": 1200, "window_seconds": 60},
            ]
            q = {"daily": 1000000, "monthly": 10000000}
        specs.append((f"soak {group} {i:04d}", group, {"rate_limits": rules, "quota": q}))
    for scenario in ("quota-ctl", "quota-redis"):
        for i in range(n_quota):
            specs.append((f"soak {scenario} {i}", scenario, {"quota": {"daily": quota}}))

    results = [None] * len(specs)
    errors = []
    lock = threading.Lock()
    next_i = [0]

    def worker():
        conn = conn_for(base)
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= len(specs) or errors:
                return
            name, group, extra = specs[i]
            body = {"name": name, "scopes": ["achievements:read"], **extra}
            last = None
            for attempt in range(40):
                try:
                    status, key = call(conn, "POST", "/v1/keys", body, session)
                except (OSError, http.client.HTTPException) as e:
                    last = repr(e)
                    conn = conn_for(base)
                    time.sleep(0.25)
                    continue
                if status == 201:
                    results[i] = {"id": key["id"], "token": key["token"], "group": group}
                    break
                last = f"{status} {key}"
                if status not in (429, 503):
                    errors.append(f"{name}: {last}")
                    return
                # argon2 queue full or the database busy: wait as told.
                time.sleep(0.25 * (attempt + 1))
            else:
                errors.append(f"{name}: no success after 40 attempts, last: {last}")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit("key creation failed: " + "; ".join(errors[:3]))
    with open(os.path.join(out, "keys.jsonl"), "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(out, "verify-bodies.txt"), "w") as f:
        for r in results:
            if r["group"] in ("std", "tight", "smallq"):
                f.write(json.dumps({"key": r["token"]}) + "\n")
    print(f"{len(results)} keys made")


if __name__ == "__main__":
    main()
