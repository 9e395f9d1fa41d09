#!/usr/bin/env python3
"""Writes the soak's report (markdown, on standard output) from artifacts/soak (scripts/soak.sh).

    report.py OUT_DIR DATABASE_URL

Reads the schedule (events.tsv), every main-load request oha recorded (oha-node*.db, with the
Unix time each oha started from oha-start.tsv), oha's JSON summaries (errors), the quota probes
(quota-*.json), the revocations (revocations.jsonl), the pusher's files (pusher/), and queries
PostgreSQL directly (not through the soak's proxy) for usage, quota and sync rows.
"""

import datetime
import glob
import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter, defaultdict


def read_params(out):
    p = {}
    for line in open(os.path.join(out, "params.env")):
        k, _, v = line.rstrip("\n").partition("=")
        p[k] = v
    return p


def read_events(out):
    ev = []
    for line in open(os.path.join(out, "events.tsv")):
        ts, name, detail = (line.rstrip("\n").split("\t") + ["", ""])[:3]
        ev.append((float(ts), name, detail))
    return ev


def detail_of(detail):
    return dict(kv.split("=", 1) for kv in detail.split() if "=" in kv)


def psql(url, sql):
    r = subprocess.run(
        ["psql", "-w", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", url],
        input=sql,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.split("\t") for line in r.stdout.splitlines() if line]


def read_metrics(out):
    """{(node, metric-with-labels): [(ts, value)]} from the 2 s samples."""
    series = defaultdict(list)
    path = os.path.join(out, "metrics.tsv")
    if os.path.exists(path):
        for line in open(path):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                continue
            ts, node, name, value = parts
            try:
                series[(node, name)].append((float(ts), float(value)))
            except ValueError:
                pass
    return series


def last_mode(samples, node, until):
    best = None
    for mode in ("redis", "fallback", "local"):
        for ts, v in samples.get((node, f'keyward_limiter_mode{{mode="{mode}"}}'), []):
            if ts <= until and v == 1 and (best is None or ts > best[0]):
                best = (ts, mode)
    # A sample older than 5 s says nothing about now (the node was down).
    if best is None or until - best[0] > 5:
        return None
    return best[1]


def max_lag(samples, node, a, b):
    vals = [v for ts, v in samples.get((node, "keyward_usage_flush_lag_seconds"), []) if a <= ts < b]
    return f"{max(vals):.1f}" if vals else "–"


def proxy_in(proxy, a, b):
    rows = [(acc, op) for ts, acc, op in proxy if a <= ts < b]
    if not rows:
        return "–"
    return f"{sum(r[0] for r in rows):,} / {max(r[1] for r in rows)}"


def counter_delta(points, a, b):
    """Increase of a counter over [a, b), counting a restart (a drop) as a reset to 0."""
    total = 0.0
    prev = None
    for ts, v in points:
        if ts < a:
            prev = v
            continue
        if ts >= b:
            break
        if prev is not None:
            total += v - prev if v >= prev else v
        prev = v
    return total


def lookup_delta(samples, a, b):
    out = Counter()
    for (node, name), points in samples.items():
        if name.startswith("keyward_key_lookups_total{"):
            result = name.split('result="', 1)[1].split('"', 1)[0]
            out[result] += int(counter_delta(points, a, b))
    return out


def pct(sorted_values, q):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[i]


def ms(v):
    return "–" if v is None else f"{v * 1000:.1f}"


def phases_of(events, start, end, recovery):
    """(name, from, to) windows; a request belongs to the first window holding it, else steady."""
    windows = []
    first = {}
    for ts, name, d in events:
        first.setdefault(name, ts)
    windows.append(("warm-up", start, start + 5))

    def pair(open_name, close_name, label, extra=0.0, close_detail_node=None):
        opened = None
        for ts, name, d in events:
            if name == open_name:
                opened = (ts, detail_of(d))
            elif name == close_name and opened is not None:
                dd = detail_of(d)
                if close_detail_node and dd.get("node") != opened[1].get("node"):
                    continue
                windows.append((label, opened[0], ts + extra))
                opened = None

    pair("node-kill", "node-ready", "node 2 kill -9 + restart", extra=5.0, close_detail_node=True)
    pair("push-kill", "node-ready", "node 3 kill -9 inside a push + restart", extra=5.0, close_detail_node=True)
    pair("pg-cut", "pg-restore", "PostgreSQL cut")
    for ts, name, d in events:
        if name == "pg-restore":
            windows.append(("PostgreSQL back (first %d s)" % recovery, ts, ts + recovery))
    pair("redis-stop", "redis-start", "Redis stopped")
    for ts, name, d in events:
        if name == "redis-start":
            windows.append(("Redis back (first %d s)" % recovery, ts, ts + recovery))
    return windows


def main():
    out, db_url = sys.argv[1], sys.argv[2]
    params = read_params(out)
    events = read_events(out)
    start = next(ts for ts, n, _ in events if n == "start")
    end = next((ts for ts, n, _ in events if n == "end"), None)
    seconds = float(params["seconds"])
    recovery = int(params["recovery"])
    windows = phases_of(events, start, end, recovery)
    order = ["warm-up", "steady"] + [w[0] for w in windows if w[0] != "warm-up"]
    order = list(dict.fromkeys(order))

    def phase(t):
        for name, a, b in windows:
            if a <= t < b:
                return name
        return "steady"

    # Seconds of each phase inside the load (for scheduled counts).
    span = defaultdict(float)
    step = 0.01
    t = start
    while t < start + seconds:
        span[phase(t)] += step
        t += step

    # --- main load ---------------------------------------------------------------------------
    starts = {}
    rates = {}
    for line in open(os.path.join(out, "oha-start.tsv")):
        node, ts, rate = line.split()
        starts[node] = float(ts)
        rates[node] = float(rate)
    lat = defaultdict(list)
    status = defaultdict(Counter)
    per_node_status = defaultdict(Counter)
    per_node_lat = defaultdict(list)
    answered = defaultdict(int)
    ok_total = 0
    for node in sorted(starts):
        path = os.path.join(out, f"oha-node{node}.db")
        if not os.path.exists(path):
            continue
        con = sqlite3.connect(path)
        for s, slc, e, st in con.execute("SELECT start, start_latency_correction, end, status FROM oha"):
            at = slc if slc is not None else s
            ph = phase(starts[node] + at)
            d = e - at
            lat[ph].append(d)
            status[ph][st] += 1
            per_node_status[node][st] += 1
            per_node_lat[node].append(d)
            answered[ph] += 1
            if st == 200:
                ok_total += 1
        con.close()
    errors = Counter()
    summaries = {}
    for node in sorted(starts):
        path = os.path.join(out, f"oha-node{node}.json")
        if os.path.exists(path):
            j = json.load(open(path))
            summaries[node] = j
            for k, v in (j.get("errorDistribution") or {}).items():
                errors[k] += v
    total_rate = sum(rates.values())

    lines = []
    w = lines.append
    w("# Keyward chaos soak")
    w("")
    w(
        f"{params.get('commit', '?')}, {params.get('cores', '?')} cores, {int(seconds)} s of fixed-rate load at "
        f"{int(total_rate)} req/s (`POST /v1/verify`, one oha per node, `-q {int(rates.get('1', 0))}` each, "
        f"--latency-correction, a random one of {params['keys']} keys per request), three release nodes "
        f"on one PostgreSQL (through a cuttable proxy) and one Redis; {params.get('oha', 'oha')}; "
        f"outages of {params['outage']} s; server binary built {params.get('server_built', '?')}; "
        f"{params.get('connections', '?')} connections per oha; {params.get('db_pool', '?')} database connections per node. "
        "Load generators, nodes, PostgreSQL and Redis share the machine."
    )
    w("")
    loads = [v for ts, v in read_metrics(out).get(("0", "loadavg1"), []) if start <= ts <= start + seconds]
    if loads:
        w(f"Machine load average (1 min) during the run: mean {sum(loads) / len(loads):.1f}, max {max(loads):.1f} "
          f"on {params.get('cores', '?')} cores (anything above the soak's own use is other work on the machine).")
        w("")
    w("## Schedule")
    w("")
    w("| at (s) | event | detail |")
    w("|---|---|---|")
    for ts, name, d in events:
        w(f"| {ts - start:.1f} | {name} | {d} |")
    w("")

    total_answered = sum(answered.values())
    all_status = Counter()
    for c in status.values():
        all_status.update(c)
    w("## Requests")
    w("")
    w(
        f"Scheduled about {int(total_rate * seconds):,} requests; {total_answered:,} answered "
        f"({total_answered / max(1.0, seconds):.0f}/s); status counts: "
        + ", ".join(f"{k}: {v:,}" for k, v in sorted(all_status.items()))
        + "; no answer (connection refused or reset, timeouts): "
        + (", ".join(f"{k}: {v:,}" for k, v in errors.most_common()) if errors else "none")
        + "."
    )
    w("")
    w("Per phase (latency from the scheduled send time, so queueing behind a stall counts; "
      "`no answer` is the phase's scheduled requests less those answered):")
    w("")
    w("| phase | seconds | answered | no answer | status counts | p50 ms | p99 ms | max ms |")
    w("|---|---|---|---|---|---|---|---|")
    for ph in order:
        if span.get(ph, 0) <= 0 and not answered.get(ph):
            continue
        v = sorted(lat.get(ph, []))
        sched = total_rate * span.get(ph, 0)
        missing = max(0, int(round(sched - answered.get(ph, 0))))
        sc = ", ".join(f"{k}: {n:,}" for k, n in sorted(status[ph].items()))
        w(
            f"| {ph} | {span.get(ph, 0):.1f} | {answered.get(ph, 0):,} | {missing:,} | {sc} | "
            f"{ms(pct(v, 0.5))} | {ms(pct(v, 0.99))} | {ms(v[-1] if v else None)} |"
        )
    w("")
    w("Per node (whole run):")
    w("")
    w("| node | answered | status counts | p50 ms | p99 ms | errors (oha) |")
    w("|---|---|---|---|---|---|")
    for node in sorted(starts):
        v = sorted(per_node_lat[node])
        err = summaries.get(node, {}).get("errorDistribution") or {}
        w(
            f"| {node} | {len(v):,} | "
            + ", ".join(f"{k}: {n:,}" for k, n in sorted(per_node_status[node].items()))
            + f" | {ms(pct(v, 0.5))} | {ms(pct(v, 0.99))} | {sum(err.values()):,} |"
        )
    w("")

    # Timeline: what the load saw, bucket by bucket.
    bucket = 10.0 if seconds >= 300 else 5.0
    tl = defaultdict(list)
    tl_bad = Counter()
    for node in sorted(starts):
        path = os.path.join(out, f"oha-node{node}.db")
        if not os.path.exists(path):
            continue
        con = sqlite3.connect(path)
        for s_, slc, e, st in con.execute("SELECT start, start_latency_correction, end, status FROM oha"):
            at = slc if slc is not None else s_
            b = int((starts[node] + at - start) // bucket)
            tl[b].append(e - at)
            if st != 200:
                tl_bad[b] += 1
        con.close()
    samples = read_metrics(out)
    proxy = []
    ppath = os.path.join(out, "pgproxy.log")
    if os.path.exists(ppath):
        for line in open(ppath):
            parts = line.split()
            if len(parts) == 4 and parts[1] == "stats":
                proxy.append((float(parts[0]), int(parts[2].split("=")[1]), int(parts[3].split("=")[1])))
    w(f"Timeline ({bucket:.0f} s buckets; answered per second against {int(total_rate)} scheduled; limiter "
      "mode and key lookups from each node's /metrics, sampled every 2 s):")
    w("")
    w("| from s | phase | answered/s | non-200 | p50 ms | p99 ms | limiter mode (nodes 1-3) | key lookups: cache / stale / database / unavailable | usage flush lag, max s (nodes 1-3) | database connections opened / open (proxy) |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    nb = int(seconds // bucket)
    for b in range(nb):
        a0, a1 = start + b * bucket, start + (b + 1) * bucket
        v = sorted(tl.get(b, []))
        modes = []
        for node in ("1", "2", "3"):
            m = last_mode(samples, node, a1)
            modes.append(m or "–")
        lk = lookup_delta(samples, a0, a1)
        w(
            f"| {b * bucket:.0f} | {phase(a0 + bucket / 2)} | {len(v) / bucket:.0f} | {tl_bad.get(b, 0)} | "
            f"{ms(pct(v, 0.5))} | {ms(pct(v, 0.99))} | {' '.join(modes)} | "
            f"{lk.get('cache', 0):,} / {lk.get('stale', 0):,} / {lk.get('database_found', 0) + lk.get('database_absent', 0):,} / {lk.get('unavailable', 0):,} | "
            + " ".join(max_lag(samples, node, a0, a1) for node in ("1", "2", "3"))
            + f" | {proxy_in(proxy, a0, a1)} |"
        )
    w("")

    # --- keys -----------------------------------------------------------------------------------
    keys = [json.loads(l) for l in open(os.path.join(out, "keys.jsonl"))]
    groups = defaultdict(list)
    for k in keys:
        groups[k["group"]].append(k["id"])
    load_ids = groups["std"] + groups["tight"] + groups["smallq"]

    def arr(ids):
        return "'{" + ",".join(ids) + "}'::uuid[]"

    # --- revocations ---------------------------------------------------------------------------
    w("## Revocation visible on every node")
    w("")
    revs = []
    path = os.path.join(out, "revocations.jsonl")
    if os.path.exists(path):
        revs = [json.loads(l) for l in open(path)]
    if revs:
        w("Each key revoked through node 1's admin API; from the moment that call answered, every "
          "node was polled (`POST /v1/verify`, every 5 ms) until it answered `revoked`.")
        w("")
        w("| batch | at (s) | when | keys | revoke call ms (max) | node 1 ms (max) | node 2 ms (max) | node 3 ms (max) | every node, max ms |")
        w("|---|---|---|---|---|---|---|---|---|")
        def label(at):
            prior = [(ts, n) for ts, n, _ in events if ts <= at and n not in ("revoke", "quota-probe-start", "quota-probe-end", "warmup-end", "skipped")]
            if not prior:
                return ""
            ts, n = prior[-1]
            return f"{at - ts:.0f} s after {n}"

        by_batch = defaultdict(list)
        for r in revs:
            by_batch[r["batch"]].append(r)
        nodes = params["nodes"].split()
        for b, rs in sorted(by_batch.items()):
            def mx(vals):
                vals = [v for v in vals if v is not None]
                return f"{max(vals):.0f}" if vals else "never"
            failed = [r for r in rs if r["revoke_status"] != 200]
            rs_ok = [r for r in rs if r["revoke_status"] == 200]
            per = [mx([r["nodes"].get(n) for r in rs_ok]) if rs_ok else "–" for n in nodes]
            allv = [r["max_ms"] for r in rs_ok]
            if not rs_ok:
                everywhere = "revoke call failed: " + ", ".join(f"{k} ×{v}" for k, v in Counter(str(r["revoke_status"]) for r in failed).items())
            elif any(v is None for v in allv):
                everywhere = "not within 20 s on some node"
            else:
                everywhere = f"{max(allv):.0f}"
                if failed:
                    everywhere += f" ({len(failed)} revoke calls failed)"
            w(
                f"| {b} | {rs[0]['at'] - start:.1f} | {label(rs[0]['at'])} | {len(rs)} | {mx([r['api_ms'] for r in rs])} | "
                + " | ".join(per)
                + f" | **{everywhere}** |"
            )
        odd = Counter()
        for r in revs:
            for n, c in (r.get("answers") or {}).items():
                for k, v in c.items():
                    if k != "200 revoked":
                        odd[(nodes.index(n) + 1 if n in nodes else n, k)] += v
        if odd:
            w("")
            w("Answers before `revoked`, per node (a `200 valid` after the revoke had answered is a revoked key "
              "still accepted): " + ", ".join(f"node {n} `{k}` ×{v}" for (n, k), v in sorted(odd.items())) + ".")
        elif any(r.get("answers") for r in revs):
            w("")
            w("No node accepted a revoked key after the revoke call had answered: each node's first answer was "
              "already `revoked`, so the times above are those answers' own latency.")
        ok = [r for r in revs if r["revoke_status"] == 200]
        failed = len(revs) - len(ok)
        allmax = [r["max_ms"] for r in ok]
        w("")
        if failed:
            w(f"**{failed} of {len(revs)} revoke calls failed** (the admin API answered "
              + ", ".join(f"{k} ×{v}" for k, v in Counter(str(r["revoke_status"]) for r in revs if r["revoke_status"] != 200).items())
              + "; nothing to time).")
        if allmax and all(v is not None for v in allmax):
            w(f"Over the {len(ok)} revocations made: visible on every node within **{max(allmax):.0f} ms** "
              f"(median {sorted(allmax)[len(allmax) // 2]:.0f} ms).")
        elif allmax:
            w(f"**{sum(v is None for v in allmax)} of {len(ok)} revocations made were not visible on every node within 20 s.**")
    else:
        w("No revocations recorded.")
    w("")

    # --- quota over-grant -----------------------------------------------------------------------
    w("## Quota over-grant")
    w("")
    quota = int(params["quota"])
    w(f"Each probe key has a daily quota of {quota} and no rate limit; during the probe it is called "
      f"on `GET /v1/whoami` from all three nodes at once ({params['quota_rate']} req/s per node). "
      "Grants are the 200 answers; over-grant is grants beyond the quota. The bound is the "
      "README's for a leased quota on 3 nodes: none while Redis answers (every unit is taken from "
      "the shared counter before a node grants it); with Redis stopped, each node falls back to "
      "its own local count, so up to 2 × the quota beyond it.")
    w("")
    w("| scenario | key | grants (200) | refused (429) | other | no answer | over-grant | bound | quota_usage stored |")
    w("|---|---|---|---|---|---|---|---|---|")
    probe_ids = {"ctl": groups["quota-ctl"], "redis": groups["quota-redis"]}
    stored_q = {}
    rows = psql(db_url, f"select lineage_id, sum(used) from quota_usage where period = 'day' and lineage_id = any({arr(groups['quota-ctl'] + groups['quota-redis'])}) group by 1")
    for kid, used in rows:
        stored_q[kid] = int(used)
    quota_expected_usage = 0
    samples_all = read_metrics(out)
    probe_windows = {}
    opened = {}
    for ts, n, d in events:
        if n == "quota-probe-start":
            opened[detail_of(d).get("scenario")] = ts
        elif n == "quota-probe-end":
            sc = detail_of(d).get("scenario")
            if sc in opened:
                probe_windows[sc] = (opened.pop(sc), ts)
    for scenario, label in (("ctl", "Redis up (control)"), ("redis", "Redis stopped")):
        tot_over = 0
        for j, kid in enumerate(probe_ids[scenario]):
            c = Counter()
            err = 0
            for f in glob.glob(os.path.join(out, f"quota-quota-{scenario}-k{j}-n*.json")):
                s = json.load(open(f))
                for k, v in (s.get("statusCodeDistribution") or {}).items():
                    c[int(k)] += v
                err += sum((s.get("errorDistribution") or {}).values())
            grants = c.get(200, 0)
            over = max(0, grants - quota)
            tot_over += over
            quota_expected_usage += c.get(200, 0) + c.get(429, 0)
            other = sum(v for k, v in c.items() if k not in (200, 429))
            bound = 0 if scenario == "ctl" else 2 * quota
            within = "within" if over <= bound else "**beyond**"
            w(f"| {label} | {j} | {grants} | {c.get(429, 0)} | {other} | {err} | **{over}** | {bound} ({within}) | {stored_q.get(kid, 0)} |")
    w("")
    for sc, label in (("ctl", "Redis up (control)"), ("redis", "Redis stopped")):
        if sc not in probe_windows:
            continue
        a0, a1 = probe_windows[sc]
        modes = Counter()
        for node in ("1", "2", "3"):
            for mode in ("redis", "fallback", "local"):
                for ts, v in samples_all.get((node, f'keyward_limiter_mode{{mode="{mode}"}}'), []):
                    if a0 <= ts <= a1 and v == 1:
                        modes[mode] += 1
        total_m = sum(modes.values())
        if total_m:
            w(f"- {label}: the nodes' limiter mode, sampled every 2 s during the probe: "
              + ", ".join(f"{m} {n * 100 // total_m} %" for m, n in modes.most_common()) + ".")
    w("")

    # --- usage expected vs stored ---------------------------------------------------------------
    w("## Usage: expected vs stored")
    w("")
    polls = sum(r.get("polls_200", 0) for r in revs)
    expected_load = ok_total + polls
    stored_load = int(psql(db_url, f"select coalesce(sum(count), 0) from usage_minute where key_id = any({arr(load_ids)})")[0][0])
    stored_quota = int(psql(db_url, f"select coalesce(sum(count), 0) from usage_minute where key_id = any({arr(groups['quota-ctl'] + groups['quota-redis'])})")[0][0])
    outcomes = psql(db_url, f"select outcome, sum(count) from usage_minute where key_id = any({arr(load_ids)}) group by 1 order by 2 desc")
    day = int(psql(db_url, f"select coalesce(sum(count), 0) from usage_day where key_id = any({arr(load_ids)})")[0][0])
    hour = int(psql(db_url, f"select coalesce(sum(count), 0) from usage_hour where key_id = any({arr(load_ids)})")[0][0])
    # What the killed nodes answered in the last flush interval before each kill: the most a
    # kill -9 can take with it (counts waiting in memory for the next flush).
    kills = [(ts, detail_of(d)) for ts, n, d in events if n in ("node-kill", "push-kill")]
    at_risk = 0
    kill_notes = []
    for ts, d in kills:
        node = d.get("node")
        try:
            lag = float(d.get("flush_lag_s") or 1.0)
        except ValueError:
            lag = 1.0
        path = os.path.join(out, f"oha-node{node}.db")
        n = 0
        if node and os.path.exists(path):
            con = sqlite3.connect(path)
            a = ts - starts[node]
            n = con.execute("SELECT count(*) FROM oha WHERE status = 200 AND end BETWEEN ? AND ?", (a - lag, a)).fetchone()[0]
            con.close()
        at_risk += n
        kill_notes.append(f"node {node} at {ts - start:.1f} s: last flush {lag:.1f} s before, {d.get('pending_rows', '?')} rows pending, {n:,} answers 200 since")
    per_min_expected = Counter()
    for node in sorted(starts):
        path = os.path.join(out, f"oha-node{node}.db")
        if os.path.exists(path):
            con = sqlite3.connect(path)
            for (e,) in con.execute("SELECT end FROM oha WHERE status = 200"):
                per_min_expected[int((starts[node] + e) // 60) * 60] += 1
            con.close()
    per_min_stored = Counter()
    for m, n in psql(db_url, f"select extract(epoch from minute)::int8, sum(count) from usage_minute where key_id = any({arr(load_ids)}) group by 1"):
        per_min_stored[int(m)] = int(n)
    diff = stored_load - expected_load
    w("Expected: every `POST /v1/verify` answered 200 is one count for its key (the main load, plus the "
      "revocation polls); a 503 is not counted. Stored: the sum over `usage_minute` after every node "
      "was stopped with SIGTERM (which flushes).")
    w("")
    w("| keys | expected | stored (minute) | stored (hour) | stored (day) | stored − expected |")
    w("|---|---|---|---|---|---|")
    w(f"| {len(load_ids)} load keys | {expected_load:,} | {stored_load:,} | {hour:,} | {day:,} | {diff:+,} |")
    w(f"| {len(groups['quota-ctl']) + len(groups['quota-redis'])} quota probe keys (200 + 429) | {quota_expected_usage:,} | {stored_quota:,} | | | {stored_quota - quota_expected_usage:+,} |")
    w("")
    if per_min_expected:
        w("Per UTC minute (expected by the time oha got the answer, so a count near a minute's edge may sit in the next):")
        w("")
        w("| minute (UTC) | expected | stored | stored − expected |")
        w("|---|---|---|---|")
        for m in sorted(set(per_min_expected) | set(per_min_stored)):
            e_, s_ = per_min_expected.get(m, 0), per_min_stored.get(m, 0)
            w(f"| {datetime.datetime.fromtimestamp(m, datetime.timezone.utc):%H:%M} | {e_:,} | {s_:,} | {s_ - e_:+,} |")
        w("")
    w("Stored outcomes of the load keys: " + ", ".join(f"{o}: {int(n):,}" for o, n in outcomes) + ".")
    w("")
    w("A kill -9 loses what the killed node counted since its last successful flush (read from its "
      "`keyward_usage_flush_lag_seconds` just before the kill): " + "; ".join(kill_notes)
      + f". At most {at_risk:,} counts could be lost that way.")
    # Where the difference sits: the minutes around each kill against all the others (a count near
    # a minute's edge may be expected in one minute and stored in the next; windows of 3 minutes
    # net that out).
    kill_minutes = set()
    for ts, d in kills:
        m = int(ts // 60) * 60
        kill_minutes.update((m - 60, m, m + 60))
    near = sum(per_min_stored.get(m, 0) - per_min_expected.get(m, 0) for m in kill_minutes)
    far = sum(per_min_stored.get(m, 0) - per_min_expected.get(m, 0) for m in set(per_min_expected) | set(per_min_stored) if m not in kill_minutes)
    if kills:
        w(f"By minute: **{near:+,}** in the minutes around the kills (each kill's minute and its neighbours), "
          f"**{far:+,}** ({abs(far) * 100 / max(1, expected_load):.3f} % of expected) in all the other minutes together. "
          "A kill -9 loses the counts since the node's last completed flush and also the batch it was writing "
          "when it died: everything counted since that write began (taken from memory, not committed), which "
          "the flush lag does not show. When writes are slow (after a database outage, say) that batch holds "
          "many seconds of counts, so the loss at a kill can far exceed the answers since the last flush.")
    elif diff:
        w(f"No node was killed; stored − expected = {diff:+,}.")
    else:
        w("Nothing was lost.")
    w("")

    # --- ops pushed vs applied ------------------------------------------------------------------
    w("## Desktop replica: operations pushed vs applied")
    w("")
    pushed = []
    path = os.path.join(out, "pusher", "pushed.tsv")
    if os.path.exists(path):
        for line in open(path):
            rnd, op_id, kind, key_id = line.rstrip("\n").split("\t")
            pushed.append((int(rnd), op_id, kind, key_id))
    summary = {}
    spath = os.path.join(out, "pusher", "summary.json")
    if os.path.exists(spath):
        summary = json.load(open(spath))
    if pushed:
        ids = [p[1] for p in pushed]
        server = {}
        for op_id, st, created in psql(
            db_url,
            f"select op_id, coalesce(result->>'status', 'none'), extract(epoch from created_at) from sync_ops where op_id = any({arr(ids)})",
        ):
            server[op_id] = (st, float(created))
        applied = [p for p in pushed if server.get(p[1], ("",))[0] == "applied"]
        rejected = [p for p in pushed if server.get(p[1], ("",))[0] == "rejected"]
        lost = [p for p in pushed if p[1] not in server]
        # Doubled: every applied operation writes one audit entry on its key; more entries than
        # applied operations for a key means an operation took effect twice.
        expected_audit = Counter(p[3] for p in applied)
        for p in applied:
            if p[2] == "revoke_key":
                pass
        actual_audit = Counter()
        org_rows = psql(db_url, "select id from orgs where name = 'Soak Desktop'")
        org = org_rows[0][0] if org_rows else "00000000-0000-0000-0000-000000000000"
        for target, n in psql(db_url, f"select target_id, count(*) from audit_log where org_id = '{org}' and target_type = 'key' group by 1"):
            actual_audit[target] = int(n)
        doubled = sum(max(0, actual_audit[k] - n) for k, n in expected_audit.items())
        extra_keys = sum(n for k, n in actual_audit.items() if k not in expected_audit)
        missing_effect = sum(max(0, n - actual_audit[k]) for k, n in expected_audit.items())
        server_keys = int(psql(db_url, f"select count(*) from api_keys where org_id = '{org}'")[0][0])
        created = sum(1 for p in applied if p[2] == "create_key")
        kinds = Counter(p[2] for p in pushed)
        w(f"The replica (node 3) made {len(pushed):,} operations in {summary.get('rounds', '?')} rounds ("
          + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items()))
          + f"); {summary.get('failed_syncs', '?')} sync attempts failed and were retried "
          f"({summary.get('failed_push_rounds', '?')} rounds whose push got no answer); outbox left at the end: "
          f"{summary.get('outbox_left', '?')}.")
        w("")
        w("| pushed | applied | rejected | lost (no row in sync_ops) | doubled (audit entries beyond applied ops) | effects missing | keys on server / creates applied |")
        w("|---|---|---|---|---|---|---|")
        w(f"| {len(pushed):,} | {len(applied):,} | {len(rejected):,} | **{len(lost)}** | **{doubled + extra_keys}** | {missing_effect} | {server_keys:,} / {created:,} |")
        if rejected:
            codes = Counter()
            for op_id, code in psql(db_url, f"select op_id, result->>'code' from sync_ops where op_id = any({arr([p[1] for p in rejected])})"):
                codes[code] += 1
            w("")
            w("Rejected codes: " + ", ".join(f"{k}: {v}" for k, v in codes.most_common()) + ".")
        w("")
        for ts, n, d in events:
            if n == "push-kill":
                dd = detail_of(d)
                rnd = int(dd.get("round", -1))
                in_round = [p for p in pushed if p[0] == rnd]
                before = sum(1 for p in in_round if p[1] in server and server[p[1]][1] < ts)
                after = sum(1 for p in in_round if p[1] in server and server[p[1]][1] >= ts)
                inside = 0 < before < len(in_round)
                w(f"- Kill -9 of node 3 {'inside' if inside else 'around (not inside)'} a push (attempt {dd.get('attempt')}, "
                  f"at {ts - start:.1f} s, {dd.get('delay_ms')} ms into the round): round {rnd} sent {len(in_round)} operations in one "
                  f"request; {before} had committed when the node died, the other {after} were applied after its restart, "
                  "when the replica sent the same request again (the committed ones answered from `sync_ops`).")
    else:
        w("The pusher recorded no operations.")
    w("")

    # --- nodes ----------------------------------------------------------------------------------
    w("## Nodes")
    w("")
    for ts, n, d in events:
        if n == "node-ready":
            w(f"- {detail_of(d).get('node') and 'node ' + detail_of(d)['node']} ready {detail_of(d).get('after_s')} s after its restart began (at {ts - start:.1f} s).")
    for i in (1, 2, 3):
        path = os.path.join(out, f"node{i}.log")
        if os.path.exists(path):
            levels = Counter()
            messages = Counter()
            listening = []
            panics = 0
            for l in open(path, errors="replace"):
                if "panicked" in l:
                    panics += 1
                try:
                    j = json.loads(l)
                except ValueError:
                    continue
                lvl = j.get("level", "?")
                levels[lvl] += 1
                if j.get("fields", {}).get("message") == "listening for key changes":
                    try:
                        listening.append(datetime.datetime.fromisoformat(j["timestamp"].replace("Z", "+00:00")).timestamp())
                    except (KeyError, ValueError):
                        pass
                if lvl in ("WARN", "ERROR"):
                    f = j.get("fields", {})
                    msg = f.get("message", "")
                    if "error" in f:
                        msg += f" ({str(f['error'])[:70]})"
                    messages[f"{lvl} {j.get('target', '')}: {msg}"] += 1
            w(f"- node {i} log: {panics} panics, {levels.get('ERROR', 0):,} errors, {levels.get('WARN', 0):,} warnings.")
            if listening:
                w("  - listening for key changes (again) at: " + ", ".join(f"{t - start:.1f} s" for t in listening[:12]))
            for m, n in messages.most_common(6):
                w(f"  - {n:,}× {m[:200]}")
        mpath = os.path.join(out, f"metrics-node{i}.txt")
        if os.path.exists(mpath):
            picked = []
            for l in open(mpath):
                if l.startswith("#"):
                    continue
                if any(s in l for s in ("usage_dropped", "redis_fallbacks", "usage_pending", "redis_errors")):
                    picked.append(l.strip())
            if picked:
                w(f"  - metrics at the end: " + "; ".join(f"`{p}`" for p in picked[:6]))
    w("")
    w("Raw data: artifacts/soak/ (oha-node*.db every request, oha-node*.json, quota-*.json, "
      "revocations.jsonl, pusher/, node*.log, events.tsv).")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
