#!/usr/bin/env python3
"""Revokes soak keys one at a time and times until every node refuses each (scripts/soak.sh).

    revoke.py ADMIN_BASE SESSION_FILE KEYS_JSONL BATCH COUNT OUT_JSONL NODE_URL...

Takes COUNT keys of group `std` from KEYS_JSONL (batch BATCH: keys BATCH*COUNT.. from the end,
so they never overlap) and, for each key at once (one thread per key), revokes it with
`POST /v1/keys/{id}/revoke` on ADMIN_BASE and from the moment that answered polls
`POST /v1/verify` on every node (one thread per node, every 5 ms) until the node answers
`revoked`. Appends one JSON line per key to OUT_JSONL: the revoke call's status and latency,
each node's milliseconds until it answered `revoked` (from the revoke's answer; null if not
within 20 s), the maximum, how many verify calls answered 200 (each is one usage count for the
key) and what each node answered meanwhile (status and code counts).
"""

import http.client
import json
import sys
import threading
from collections import Counter
import time
import urllib.parse

POLL_S = 0.005
GIVE_UP_S = 20.0


def conn_for(base):
    u = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=10)


def post(conn, path, body, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    conn.request("POST", path, body=json.dumps(body), headers=headers)
    r = conn.getresponse()
    data = r.read()
    try:
        return r.status, json.loads(data) if data else None
    except ValueError:
        return r.status, None


def poll(node, token, since, out, seen):
    conn = conn_for(node)
    answered = 0
    while True:
        now = time.time()
        if now - since > GIVE_UP_S:
            out[node] = (None, answered)
            return
        try:
            status, body = post(conn, "/v1/verify", {"key": token})
        except (OSError, http.client.HTTPException):
            conn = conn_for(node)
            seen["no answer"] += 1
            time.sleep(POLL_S)
            continue
        code = (body or {}).get("code", "?")
        seen[f"{status} {code}"] += 1
        if status == 200:
            answered += 1
            if code == "revoked":
                out[node] = ((time.time() - since) * 1000.0, answered)
                return
        time.sleep(POLL_S)


def main():
    admin, session_file, keys_file, batch, count, out_file, *nodes = sys.argv[1:]
    batch, count = int(batch), int(count)
    session = open(session_file).read().strip()
    std = [k for k in map(json.loads, open(keys_file)) if k["group"] == "std"]
    chosen = std[len(std) - (batch + 1) * count : len(std) - batch * count]
    lock = threading.Lock()
    out = open(out_file, "a")

    def one(key):
        admin_conn = conn_for(admin)
        t0 = time.time()
        try:
            status, _ = post(admin_conn, f"/v1/keys/{key['id']}/revoke", {"reason": "soak"}, session)
        except (OSError, http.client.HTTPException) as e:
            status = f"error: {e}"
        t1 = time.time()
        seen = {}
        answers = {n: Counter() for n in nodes}
        if status == 200:
            threads = [threading.Thread(target=poll, args=(n, key["token"], t1, seen, answers[n])) for n in nodes]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        per_node = {n: (round(seen[n][0], 1) if seen.get(n) and seen[n][0] is not None else None) for n in nodes}
        visible = [v for v in per_node.values() if v is not None]
        line = {
            "batch": batch,
            "at": t0,
            "key_id": key["id"],
            "revoke_status": status,
            "api_ms": round((t1 - t0) * 1000.0, 1),
            "nodes": per_node,
            "max_ms": max(visible) if len(visible) == len(nodes) and nodes else None,
            "polls_200": sum(seen[n][1] for n in seen),
            # What each node answered while polled (status and code), the last being `revoked`.
            "answers": {n: dict(c) for n, c in answers.items()},
        }
        with lock:
            out.write(json.dumps(line) + "\n")
            out.flush()
            print(f"revoked {key['id']}: {line['revoke_status']} api {line['api_ms']} ms, visible everywhere after {line['max_ms']} ms", flush=True)

    workers = [threading.Thread(target=one, args=(k,)) for k in chosen]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    out.close()

if __name__ == "__main__":
    main()
