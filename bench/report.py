"""Renders bench/RESULTS.md from a finished bench/run (the Bench object): machine, versions, date,
every figure, each target met or not (each one not met pointing to its profile), CPU per phase,
and the perf profiles, each with "where the time goes" computed here from its per-thread rows
(CPU share by process group, kernel vs user, top symbols). The analysis of the profiles (what
limits each unmet target) is hand-written in bench/NOTES.md and included. Renders older runs
too (profiles with perf's tables only, or none)."""
import os
import platform
import re
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine():
    cpu = sh("lscpu | sed -n 's/^Model name: *//p'") or platform.processor()
    mem = sh("free -g | awk '/Mem:/ {print $2}'")
    return [("CPU", f"{cpu}, {os.cpu_count()} cores (shared with other jobs)"), ("Memory", f"{mem} GiB"),
            ("Kernel", platform.release()), ("OS", sh(". /etc/os-release && echo $PRETTY_NAME"))]


deb_version = "dpkg-query -W -f '${Version}'"


def orderd_commit():
    """The checkout's commit, marked when the code the benchmark builds has uncommitted changes."""
    return sh(f"git -C {ROOT} rev-parse --short HEAD") + \
        (" (with uncommitted changes)" if sh(f"git -C {ROOT} status --porcelain -- runtime app generated") else "")


def versions(commit=None):
    def pc(m):
        return sh(f"pkg-config --modversion {m}")
    return [("PostgreSQL", sh("/usr/lib/postgresql/15/bin/postgres --version")),
            ("gcc", sh("gcc --version | head -1")),
            ("wrk", sh(deb_version + " wrk")),
            ("pgbench", sh("/usr/lib/postgresql/15/bin/pgbench --version")),
            ("grpc core", f"{pc('grpc')} (Debian libgrpc-dev {sh(deb_version + ' libgrpc-dev')})"),
            ("libh2o-evloop", sh(deb_version + " libh2o-evloop-dev")), ("librdkafka", pc("rdkafka")),
            ("protobuf-c", pc("libprotobuf-c")), ("libpq", pc("libpq")),
            ("orderd commit", commit or orderd_commit())]


def slope_mb_per_min(series):
    """Least-squares slope of RSS over time, MB per minute."""
    if len(series) < 3:
        return 0.0
    n = len(series)
    mt = sum(t for t, _ in series) / n
    mr = sum(r for _, r in series) / n
    den = sum((t - mt) ** 2 for t, _ in series)
    return 60.0 * sum((t - mt) * (r - mr) for t, r in series) / den if den else 0.0


def leak(b):
    s = b.detail.get("rss_series", [])
    if len(s) < 6:
        return None
    steady = s[len(s) // 3:]           # after the first third: caches and pools have filled
    slope = slope_mb_per_min(steady)
    dur = steady[-1][0] - steady[0][0]
    return {"start_mb": s[0][1], "steady_start_mb": steady[0][1], "end_mb": s[-1][1], "max_mb": max(r for _, r in s),
            "slope_mb_min": slope, "steady_s": dur, "seconds": s[-1][0],
            "projected_5min_mb": slope * 5}


def fmt(v, nd=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


# A round judges a ratio target only when other jobs took less than this share of the machine
# (all cores) both while its yardstick ran and while its step ran: a ratio met because the
# yardstick was slowed by neighbours is not met.
QUIET_OTHERS_PCT = 10.0

PEER_STEPS = {"peer_emmett": "Emmett, command only", "peer_emmett_inline_projection": "Emmett, inline projection"}


def step_counts(b):
    d = b.detail
    out = {"pgbench": d.get("pgbench", {}).get("transactions"),
           "http": (d.get("http") or {}).get("requests"), "grpc": (d.get("grpc") or {}).get("requests"),
           "lifecycle": (d.get("lifecycle") or {}).get("requests"), "lag": (d.get("lag") or {}).get("requests"),
           "http_cmd": (d.get("http_cmd") or {}).get("requests"), "grpc_cmd": (d.get("grpc_cmd") or {}).get("requests")}
    for step in PEER_STEPS:
        out[step] = (d.get(step) or {}).get("requests")
    rb = d.get("rebuild") or {}
    if rb.get("cpu"):   # the timed rebuild alone (older runs' row covered the whole phase: no count)
        out["rebuild"] = rb.get("applied")
    return out


STEP_NAMES = {"http": "HTTP", "grpc": "gRPC", "http_cmd": "HTTP", "grpc_cmd": "gRPC", "pgbench": "pgbench"}


def first_step(b, side, k):
    """Which of HTTP and gRPC ran first (right after the yardstick) in round k of side
    ("all_in_one" or "command_side"); None when the run did not record it."""
    order = (getattr(b, "round_order", None) or {}).get(side) or []
    if k >= len(order):
        return None
    steps = [s for s in order[k] if s.split("_")[0] in ("http", "grpc")]
    return STEP_NAMES.get(steps[0]) if steps else None


MEASURED = ("orderd", "postgres", "loadgen", "kafka", "peer")


def cpu_costs(b):
    """Milliseconds of CPU per operation of each step, every measured process together."""
    out, counts = {}, step_counts(b)
    for name, cp in (b.cpu or {}).items():
        n = counts.get(name)
        if n:
            out[name] = 1000.0 * sum(cp.get(k, 0.0) for k in MEASURED) / n
    return out


def paired_rounds(b, step):
    """(yardstick round, step round) pairs: each round of a step with the pgbench run just before
    it (the all-in-one rounds first, then the command-side instance's)."""
    rounds = getattr(b, "rounds", None) or {}
    pg, xs = rounds.get("pgbench") or [], rounds.get(step) or []
    off = len(rounds.get("http") or []) if step.endswith("_cmd") else 0
    return [(pg[off + k], x) for k, x in enumerate(xs) if off + k < len(pg)]


def quiet_ratio(b, step, target):
    """The ratio target judged on the quiet rounds. Returns (text, verdict)."""
    pairs = paired_rounds(b, step)
    if not pairs:
        return None, None
    ratios = [x["tps"] / p["tps"] for p, x in pairs if p.get("tps")]
    known = [(p, x) for p, x in pairs if p.get("other_jobs_pct") is not None and x.get("other_jobs_pct") is not None]
    if not known:
        import statistics
        med = statistics.median(ratios) if ratios else None
        return (f"share of other jobs per round not recorded; median of the rounds' ratios {med:.2f}" if med else "–",
                (med >= target) if med else None)
    quiet = [x["tps"] / p["tps"] for p, x in known
             if p["other_jobs_pct"] < QUIET_OTHERS_PCT and x["other_jobs_pct"] < QUIET_OTHERS_PCT and p["tps"]]
    head = (f"{len(quiet)} of {len(pairs)} round(s) quiet (other jobs < {QUIET_OTHERS_PCT:.0f}% during the yardstick"
            " and the step)")
    if not quiet:
        return head, "not judged (machine busy)"
    import statistics
    med = statistics.median(quiet)
    return f"{head}: their ratios {', '.join(f'{q:.2f}' for q in quiet)}, median {med:.2f}", med >= target


# The profile (bench/run's perf windows) that shows where the time of each rate or latency target goes.
TARGET_PROFILES = {"http": "place_order_http", "grpc": "place_order_grpc",
                   "http_cmd": "place_order_http_command_side", "grpc_cmd": "place_order_grpc_command_side"}


def profile_anchor(name):
    """The GitHub anchor of the heading "### Profile <name>" (names are [a-z0-9_])."""
    return "#profile-" + name


def profile_pointer(b, name):
    profiles = getattr(b, "profiles", None) or {}
    if name in profiles:
        return f"where the time goes: [profile {name}]({profile_anchor(name)})"
    return f"no profile {name} in this run (--no-profile, or a run from before it was taken)"


def thread_group(comm):
    """A thread name without its number: es-worker-3 and es-worker are one group; librdkafka's
    rdk:main, rdk:broker1, ... one."""
    if comm.startswith("rdk:"):
        return "rdk:* (librdkafka)"
    return re.sub(r"[-_:]?\d+$", "", comm) or comm


def group_of(role, comm):
    """The process group of a sampled thread: its process's role recorded by bench/run (a
    PostgreSQL process by its title; "<process> threads" split by thread name)."""
    if role is None:
        return "PostgreSQL backends" if comm == "postgres" else f"{thread_group(comm)} (process not recorded)"
    if role.endswith(" threads"):
        proc = role[:-len(" threads")]
        return f"{proc}: {'main thread' if comm == proc else thread_group(comm)}"
    return role


SYMBOL_LINE = re.compile(r"\s*([\d.]+)%\s+(\S+)\s+(\S+)\s+\[[.k]\]\s+(.*\S)")


def where_time_goes(rep):
    """Markdown lines: the CPU share of each process group (with its kernel part), PostgreSQL's
    backends beside its WAL writer and checkpointer, kernel vs user, the top symbols; computed
    from a profile's per-thread rows (bench/run's perf `--sort pid,dso`). Empty for a profile of
    an older run, which kept only perf's tables."""
    rows, roles = rep.get("rows"), rep.get("roles") or {}
    if rows is None:
        return []
    if not rows:
        return [f"perf recorded no samples in this window (perf: {rep.get('empty', 'no samples')}): perf could not"
                " start, or the work was over before the window opened (a --quick run's rebuild is)."]
    total = sum(r[0] for r in rows) or 1.0
    groups = {}
    for share, tid, comm, dso in rows:
        g = groups.setdefault(group_of(roles.get(str(tid)), comm), [0.0, 0.0])
        g[0] += share
        if dso.startswith("[kernel"):
            g[1] += share
    kernel = sum(g[1] for g in groups.values())
    pg = {k: v[0] for k, v in groups.items() if k.startswith("PostgreSQL")}
    procs = {}
    for k, v in groups.items():
        proc = "PostgreSQL" if k.startswith("PostgreSQL") else k.split(": ")[0]
        procs[proc] = procs.get(proc, 0.0) + v[0]
    pct = lambda x: f"{100.0 * x / total:.1f}%"
    L = [f"Where the time goes ({rep.get('samples', '?')} samples in {rep.get('seconds', '?')} s, shares of the CPU "
         f"these processes used in the window): user {pct(total - kernel)}, kernel {pct(kernel)}; by process: "
         + ", ".join(f"{k} {pct(v)}" for k, v in sorted(procs.items(), key=lambda kv: -kv[1])) + "."]
    if pg:
        for k in ("PostgreSQL backends", "PostgreSQL WAL writer", "PostgreSQL checkpointer"):
            pg.setdefault(k, 0.0)
        L[-1] += " PostgreSQL: " + ", ".join(f"{k[len('PostgreSQL '):]} {pct(v)}"
                                             for k, v in sorted(pg.items(), key=lambda kv: -kv[1])) + "."
    L += ["", "| process group (threads by name) | CPU share | of it in the kernel |", "|---|---|---|"]
    for k, (share, kern) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        if 100.0 * share / total >= 0.5:
            L.append(f"| {k} | {pct(share)} | {pct(kern)} |")
    rest = sum(v[0] for v in groups.values() if 100.0 * v[0] / total < 0.5)
    if rest:
        L.append(f"| other groups under 0.5% each ({sum(1 for v in groups.values() if 100.0 * v[0] / total < 0.5)}) | "
                 f"{pct(rest)} | |")
    tops = []
    for ln in rep.get("by_symbol") or []:
        m = SYMBOL_LINE.match(ln)
        if m and len(tops) < 6:
            tops.append(f"`{m.group(4)}` {m.group(1)}% ({m.group(2)}, {m.group(3)})")
    if tops:
        L += ["", "Top symbols (self time): " + "; ".join(tops) + "."]
    return L


def targets(b):
    r = b.res
    out = []
    pg_tps, pg_p99 = r.get("pgbench_insert_tps"), r.get("pgbench_insert_p99_ms")

    def add(name, figure, met, profile=None):
        if isinstance(met, str):
            verdict = f"**{met}**"
        else:
            verdict = "**met**" if met else ("**NOT met**" if met is not None else "not measured")
        if profile and met is not True and met is not None:
            verdict += "; " + profile_pointer(b, profile)
        out.append((name, figure, verdict))

    for label, key, step, target in (
            ("all-in-one PlaceOrder HTTP tps >= 1.0 x pgbench INSERT tps", "place_order_http_tps", "http", 1.0),
            ("all-in-one PlaceOrder gRPC tps >= 1.0 x pgbench INSERT tps", "place_order_grpc_tps", "grpc", 1.0),
            ("command-side PlaceOrder HTTP tps >= 1.5 x pgbench INSERT tps (relay on, projection in another process)",
             "place_order_http_tps_command_side", "http_cmd", 1.5),
            ("command-side PlaceOrder gRPC tps >= 1.5 x pgbench INSERT tps (relay on, projection in another process)",
             "place_order_grpc_tps_command_side", "grpc_cmd", 1.5)):
        v = r.get(key)
        if not (v and pg_tps):
            add(label, "–", None)
            continue
        text, verdict = quiet_ratio(b, step, target)
        fig = f"medians {fmt(v, 0)} / {fmt(pg_tps, 0)} = {v / pg_tps:.3f}"
        if text is None:   # no rounds recorded: the medians decide
            add(label, fig, v / pg_tps >= target, TARGET_PROFILES[step])
        else:
            add(label, f"{fig}; judged on the rounds: {text}", verdict, TARGET_PROFILES[step])
    costs = cpu_costs(b)
    if costs.get("pgbench") and any(k in costs for k in ("http", "grpc", "http_cmd", "grpc_cmd")):
        parts = [f"{label} {costs['pgbench'] / costs[k]:.2f}" for k, label in
                 (("http", "HTTP"), ("grpc", "gRPC"), ("http_cmd", "command-side HTTP"), ("grpc_cmd", "command-side gRPC"))
                 if costs.get(k)]
        out.append(("the same as a cost: CPU of a pgbench INSERT / CPU of a PlaceOrder, every process measured "
                    "(the CPU table below; other jobs on the machine do not enter it)",
                    f"{costs['pgbench']:.3f} ms per INSERT; " + ", ".join(parts), "information"))
    lag = b.detail.get("lag", {})
    p99h = lag.get("p99_ms")
    add("PlaceOrder p99 at 50% of max rate <= 3 x pgbench p99",
        f"{fmt(p99h, 2)} ms vs 3 x {fmt(pg_p99, 2)} = {fmt(3 * pg_p99, 2)} ms"
        f" (at {fmt(lag.get('tps'), 0)}/s)" if p99h is not None and pg_p99 else "–",
        (p99h <= 3 * pg_p99) if p99h is not None and pg_p99 else None, "lag_50pct")
    lp = r.get("projection_lag_p99_ms")
    wins = lag.get("window_p99_ms") or []
    spread = (f"; p99 of each of {len(wins)} consecutive windows of the run: "
              f"{', '.join(f'{w:.1f}' for w in wins)} ms (spread {min(wins):.1f}-{max(wins):.1f}, "
              f"{sum(w <= 100 for w in wins)} of {len(wins)} within 100 ms)") if wins else ""
    add("projection lag p99 <= 100 ms at 50% of max rate, with its spread over the rounds",
        f"p50 {fmt(r.get('projection_lag_p50_ms'), 1)} ms, p99 {fmt(lp, 1)} ms{spread}" if lp is not None else "–",
        (lp <= 100) if lp is not None else None, "lag_50pct")
    dr = b.detail.get("projection_drain") or {}
    for key, name, sub in (("projection_drain_events_per_s", "live projection drain >= 30,000 events/s "
                            f"(a {dr.get('events', 1000000):,}-event backlog, settled database; bench/drain)", "settled"),
                           ("projection_drain_fresh_events_per_s", "the same on a fresh database (the first minutes "
                            "after migrations; bench/drain --fresh)", "fresh")):
        v = r.get(key)
        if not dr.get("measured", False) and v is None:
            add(name, "not measured (bench/drain missing)" if dr.get("why") == "bench/drain missing" else "–",
                "not measured")
        else:
            x = dr.get(sub) or {}
            add(name, f"{fmt(v, 0)} events/s ({fmt(x.get('events'))} events in {fmt(x.get('seconds'), 1)} s)"
                if v is not None else "–", (v >= 30000) if v is not None else None, "drain")
    rb = r.get("rebuild_events_per_s")
    rc = (b.detail.get("rebuild") or {}).get("cpu") or {}
    cpu = (f"; CPU per 1,000 events of the timed rebuild: bench_store {rc['bench_store_ms_per_1000_events']:.1f} ms,"
           f" PostgreSQL {rc['postgres_ms_per_1000_events']:.1f} ms (other jobs {rc['other_jobs_pct']:.0f}%"
           " of the machine meanwhile)") if rc else ""
    add("rebuild >= 250,000 events/s", f"{fmt(rb, 0)} events/s{cpu}" if rb is not None else "–",
        (rb >= 250000) if rb is not None else None, "rebuild")
    rs = r.get("rehydrate_1000_snapshot_ms")
    add("rehydrate 1,000 events with snapshots <= 1 ms",
        f"{fmt(rs, 3)} ms (without: {fmt(r.get('rehydrate_1000_ms'), 2)} ms)" if rs is not None else "–",
        (rs <= 1.0) if rs is not None else None)
    rss = r.get("orderd_peak_rss_mb")
    lk = leak(b)
    flat = (abs(lk["projected_5min_mb"]) <= max(2.0, 0.02 * lk["end_mb"])) if lk else None
    fig = f"peak {fmt(rss, 1)} MB" if rss else "peak –"
    if lk:
        fig += (f"; {lk['steady_start_mb']:.1f} -> {lk['end_mb']:.1f} MB over the last {lk['steady_s']:.0f} s of a"
                f" {lk['seconds']:.0f} s run, slope {lk['slope_mb_min']:+.2f} MB/min"
                f" ({lk['projected_5min_mb']:+.1f} MB per 5 min)")
    else:
        fig += "; flatness not measured (too few RSS samples)"
    add("orderd peak RSS <= 128 MB and flat under steady load (no leak)", fig,
        (rss <= 128 and flat) if rss and flat is not None else (False if rss and rss > 128 else None))
    add("errors = 0", fmt(r.get("errors")), r.get("errors") == 0)
    return out


def peers_table(b):
    """The peer (bench/run --peers) beside orderd, from the same rounds."""
    r, d = b.res, b.detail
    if not getattr(b, "peers", False):
        return ["", "## Peers", "", "Skipped: this run was a plain `bench/run`, which stays offline. `bench/run --peers` "
                "installs Emmett from npm (bench/peers/emmett, pinned by its lock file) and measures it here."]
    costs = cpu_costs(b)
    v = getattr(b, "peer_versions", {}) or {}
    L = ["", "## Peers", "",
         f"The same PlaceOrder body (bench/place_order.lua, {b.clients} connections, wrk) against a small Emmett app "
         "(bench/peers/emmett/app.mjs: node's http module, the same validation and totals in a decide function, "
         "one OrderPlaced event appended to Emmett's PostgreSQL event store, the same bearer token checked) on the "
         "same PostgreSQL (a database of its own), in the same rounds as orderd's steps 1-3, each figure the median "
         f"round. Emmett {v.get('@event-driven-io/emmett-postgresql', '?')}, Pongo {v.get('@event-driven-io/pongo', '?')}, "
         f"pg {v.get('pg', '?')}, node {v.get('node', '?')}; two node processes (node:cluster) of 8 pooled connections each. "
         "Differences that favour the peer: it records no command id (the Idempotency-Key is stored as metadata, "
         "never checked), publishes nothing (orderd's relay publishes every event to Kafka), and keeps no second "
         "copy of the payload as jsonb. CPU per request: every process measured for orderd (orderd, PostgreSQL, "
         "the load generator, the Kafka mock); the peer's node processes, PostgreSQL and wrk for the peer.", "",
         "| service | tps | ratio to pgbench INSERT | p50 | p99 | CPU per request |", "|---|---|---|---|---|---|"]
    pg_tps = r.get("pgbench_insert_tps")
    rows = [("orderd all-in-one, HTTP", "http", "place_order_http_tps", "place_order_http_p99_ms", None),
            ("orderd command-side, HTTP", "http_cmd", "place_order_http_tps_command_side",
             "place_order_http_p99_ms_command_side", None)]
    rows += [(label, step, f"{step}_tps", f"{step}_p99_ms", f"{step}_cpu_ms_per_request") for step, label in PEER_STEPS.items()]
    for label, step, tk, pk, ck in rows:
        x = d.get(step) or {}
        tps = r.get(tk)
        cpu = r.get(ck) if ck else costs.get(step)
        L.append(f"| {label} | {fmt(tps, 0)} | {f'{tps / pg_tps:.2f}' if tps and pg_tps else '–'} | "
                 f"{fmt(x.get('p50_ms'), 2)} ms | {fmt(r.get(pk), 2)} ms | "
                 f"{f'{cpu:.3f} ms' if cpu else '–'} |")
    return L


def render(b):
    r, d = b.res, b.detail
    L = []
    mode = "quick (a check that the benchmark works; the figures mean nothing)" if b.quick else "full"
    L += ["# orderd benchmark results", "",
          f"Produced by `bench/run` ({mode}) on {b.started.strftime('%Y-%m-%d %H:%M UTC')}, in {b.elapsed:.0f} s. "
          "Everything ran side by side in one run on one machine, so compare the ratios, not the absolute "
          "figures: this 2-core machine is shared with other jobs (load average at the end of the run: "
          f"{getattr(b, 'load_end', None) or os.getloadavg()[0]:.1f}), and every figure moves with its neighbours' load.", "",
          "## Machine and versions", "", "| | |", "|---|---|"]
    # The run's own commit (a re-render from detail.json happens later, at another HEAD).
    L += [f"| {k} | {v} |" for k, v in machine() + versions(getattr(b, "commit", None))]
    L += ["", "Set-up: PostgreSQL 15 from `scripts/pg.sh` (fsync on, synchronous_commit on, shared_buffers 256MB; "
          "the benchmark adds track_commit_timestamp to date the projection), librdkafka's mock cluster "
          "(3 brokers, `scripts/kafka-mock.sh`), orderd with its defaults (pool 16, 64 workers, 2 HTTP and 2 gRPC "
          f"threads) with `--payments 0` and authentication on (one admin bearer token, sent by every client). {b.clients} client connections everywhere. Load generators run on the "
          "same 2 cores. Steps 2b and 3b repeat steps 2 and 3 on a second orderd started with `--projections 0` "
          "(a command-side instance: the relay publishes to Kafka, no consumer runs), so that the command path "
          "is measured beside the yardstick without the projection's own inserts on the same two cores. "
          "Steps 1-3 and 2b-3b run in rounds (pgbench, then the steps, again), each figure the median round; "
          "HTTP and gRPC swap places from one round to the next (round 1 HTTP first, round 2 gRPC first, ...; the "
          "rounds table says which came first, results.json's `round_order` lists every round's steps). Before every "
          "timed step of 1-5, the yardstick's included, PostgreSQL is brought to rest outside the step's time and "
          "CPU: the benchmark waits until no autovacuum worker runs, runs VACUUM (ANALYZE) in every database (which "
          "also pays the autovacuum that the last step's rows would start, at its next look, in the middle of this "
          "one) and a CHECKPOINT, so that no step inherits the vacuum and checkpoint work of the one before it; "
          "each step then pays for its own writes, including the full-page images of its first changes after the "
          "checkpoint. Before the all-in-one HTTP step the projection also catches up with the step's warm-up. "
          "The rebuild's CPU (step 6) is that of the timed rebuild alone (bench_store, which runs "
          "orderctl's rebuild, and PostgreSQL), not of generating its events or of the second, profiled rebuild. "
          f"A ratio target is judged only on the rounds where other jobs took less than {QUIET_OTHERS_PCT:.0f}% of the "
          "machine while the yardstick ran and while the step ran (the share is in the rounds table); when no round "
          "was that quiet it is not judged.", "", "## Targets", "", "| target | figures | |", "|---|---|---|"]
    L += [f"| {n} | {f} | {m} |" for n, f, m in targets(b)]
    L += ["", "## Figures", "", "| step | figure |", "|---|---|"]
    pg = d.get("pgbench", {})
    nr = len((getattr(b, "rounds", None) or {}).get("pgbench") or []) or 1
    L.append(f"| 1. pgbench single-row INSERT into es_events, {b.clients} clients, {b.dur['pgbench']} s"
             f"{f', median of {nr} rounds' if nr > 1 else ''} | "
             f"{fmt(r.get('pgbench_insert_tps'), 0)} tps, p50 {fmt(pg.get('p50_ms'), 2)} ms, "
             f"p99 {fmt(r.get('pgbench_insert_p99_ms'), 2)} ms |")
    for key, name in (("http", "2. PlaceOrder over HTTP (wrk)"), ("grpc", "3. PlaceOrder over gRPC (grpc core client)")):
        x = d.get(key)
        if x:
            med = f", median of {x['rounds']} rounds" if x.get("rounds", 1) > 1 else ""
            L.append(f"| {name}, {b.dur[key]} s{med} | {fmt(x['tps'], 0)} commands/s, p50 {fmt(x['p50_ms'], 2)} ms, "
                     f"p99 {fmt(x['p99_ms'], 2)} ms, max {fmt(x['max_ms'], 1)} ms, errors {x['errors']} |")
    for key, name in (("http_cmd", "2b. PlaceOrder over HTTP (wrk), command-side instance"),
                      ("grpc_cmd", "3b. PlaceOrder over gRPC, command-side instance")):
        x = d.get(key)
        if x:
            med = f", median of {x['rounds']} rounds" if x.get("rounds", 1) > 1 else ""
            L.append(f"| {name}, {b.dur[key[:4]]} s{med} | {fmt(x['tps'], 0)} commands/s, p50 {fmt(x['p50_ms'], 2)} ms, "
                     f"p99 {fmt(x['p99_ms'], 2)} ms, max {fmt(x['max_ms'], 1)} ms, errors {x['errors']} |")
    x = d.get("lifecycle")
    if x:
        L.append(f"| 4. mixed lifecycle over HTTP, {b.dur['lifecycle']} s | {fmt(x['tps'], 0)} commands/s "
                 f"({x['placed']} placed, {x['delivered']} delivered, {x['cancelled']} cancelled), "
                 f"p50 {fmt(x['p50_ms'], 2)} ms, p99 {fmt(x['p99_ms'], 2)} ms, errors {x['errors']} |")
    for step, x in (d.get("drain") or {}).items():
        L.append(f"| before step {step}: the projection's backlog | {x['backlog']:,} events, applied in "
                 f"{x['seconds']:.0f} s ({fmt(x['events_per_s'], 0)} events/s with no command load)"
                 + (f"; {x['left']:,} still left when the step began" if x['left'] else "") + " |")
    x = d.get("lag")
    if x:
        how = ("open-loop gRPC client" if x.get("transport", "http") == "grpc" else "paced wrk")
        L.append(f"| 5. PlaceOrder at 50% of step 2's rate ({how}), {b.dur['lag']} s | target {fmt(x['rate_target'], 0)}/s, "
                 f"done {fmt(x['tps'], 0)}/s, p50 {fmt(x['p50_ms'], 2)} ms, p99 {fmt(x['p99_ms'], 2)} ms |")
        L.append(f"| 5. projection lag (commit of the event -> commit of its order_summary row), "
                 f"{x['lag_samples']} orders | p50 {fmt(r.get('projection_lag_p50_ms'), 1)} ms, "
                 f"p90 {fmt(x['lag_p90_ms'], 1)} ms, p99 {fmt(r.get('projection_lag_p99_ms'), 1)} ms, "
                 f"max {fmt(x['lag_max_ms'], 1)} ms |")
    x = d.get("rebuild")
    if x:
        how = "all of them" if x["complete"] else f"cut off after {x['rebuild_s']:.0f} s: {x['applied']:,} applied"
        c = x.get("cpu")
        cpu = (f"; CPU of the timed rebuild alone ({c['seconds']:.1f} s, other jobs {c['other_jobs_pct']:.0f}% of "
               f"the machine): bench_store {c['bench_store_s']:.1f} s, PostgreSQL {c['postgres_s']:.1f} s, per 1,000 "
               f"events {c['bench_store_ms_per_1000_events']:.1f} + {c['postgres_ms_per_1000_events']:.1f} ms") if c else ""
        L.append(f"| 6. rebuild order_summary from {x['events']:,} stored events ({x['orders']:,} orders; "
                 f"written by COPY in {x['generate_s']:.0f} s) | {fmt(x['events_per_s'], 0)} events/s ({how}){cpu} |")
    x = d.get("rehydrate")
    if x:
        L.append(f"| 7. es_pipeline_load of a 1,000-event order, median of {x['iterations']} | no snapshot "
                 f"{fmt(x['rehydrate_1000_ms'], 3)} ms (p99 {fmt(x['rehydrate_1000_p99_ms'], 3)}); snapshot at "
                 f"v1000 {fmt(x['rehydrate_1000_snapshot_ms'], 3)} ms (p99 {fmt(x['rehydrate_1000_snapshot_p99_ms'], 3)}); "
                 f"worst case, snapshot at v900 + 99 events {fmt(x['rehydrate_999_snapshot_worst_ms'], 3)} ms |")
    lk = leak(b)
    L.append(f"| 8. orderd peak RSS (VmHWM) after steps 2-5 | {fmt(r.get('orderd_peak_rss_mb'), 1)} MB |")
    if lk:
        L.append(f"| 8. orderd RSS during step 5 | {lk['start_mb']:.1f} MB at its start, max {lk['max_mb']:.1f}, "
                 f"{lk['end_mb']:.1f} MB at its end |")
    L.append(f"| errors (all steps) | {r.get('errors')} |")
    rounds = getattr(b, "rounds", None) or {}
    pgr = rounds.get("pgbench") or []
    if pgr:
        peer_cols = [s for s in PEER_STEPS if rounds.get(s)]

        def others(x):
            o = x.get("other_jobs_pct")
            return f"; others {o:.0f}%" if o is not None else ""
        L += ["", "### Rounds of steps 1-3 and 2b-3b",
              "", "Each round runs the yardstick and then the steps after it, each on a rested PostgreSQL; the "
              "figures above are the median rounds. \"first\" is which of HTTP and gRPC ran right after the "
              "yardstick (they swap every round; the peers, with --peers, come last). The ratio is the round's own "
              "(step / the pgbench run of its round); \"others\" is the share of the machine other jobs took during "
              "that run.", "",
              "| round | first | pgbench INSERT | PlaceOrder HTTP | PlaceOrder gRPC |"
              + "".join(f" {PEER_STEPS[s]} |" for s in peer_cols), "|---|---|---|---|---|" + "---|" * len(peer_cols)]
        n1 = len(rounds.get("http") or [])
        for i, pgx in enumerate(pgr):
            side = "" if i < n1 else "_cmd"
            k = i if i < n1 else i - n1
            cells = []
            for step in ["http" + side, "grpc" + side] + peer_cols:
                if side and step in peer_cols:
                    cells.append("–")
                    continue
                xs = rounds.get(step) or []
                cells.append(f"{fmt(xs[k]['tps'], 0)}/s ({xs[k]['tps'] / pgx['tps']:.2f}{others(xs[k])})"
                             if k < len(xs) else "–")
            label = f"{k + 1}" + (" (command-side instance)" if side else "")
            first = first_step(b, "command_side" if side else "all_in_one", k) or "– (not recorded)"
            L.append(f"| {label} | {first} | {fmt(pgx['tps'], 0)} tps, p99 {fmt(pgx['p99_ms'], 2)} ms{others(pgx)} | "
                     + " | ".join(cells) + " |")
    L += peers_table(b)
    c = d.get("codec")
    if c:
        L += ["", "### Codec: proto3 JSON (es/json.h) beside protobuf-c binary, one thread", "",
              "| message | bytes JSON / binary | JSON encode | JSON decode | protobuf-c pack | protobuf-c unpack |",
              "|---|---|---|---|---|---|"]
        for m, name in (("place_order", "PlaceOrderRequest"), ("order_summary", "OrderSummary")):
            cell = lambda k: f"{c[f'codec_{m}_{k}_mb_s']:.0f} MB/s ({c[f'codec_{m}_{k}_msg_s'] / 1000:.0f}k/s)"
            L.append(f"| {name} | {c[f'codec_{m}_json_bytes']} / {c[f'codec_{m}_pb_bytes']} | {cell('json_encode')} | "
                     f"{cell('json_decode')} | {cell('pb_pack')} | {cell('pb_unpack')} |")
    if b.cpu:
        L += ["", "### CPU per step", "",
              "CPU seconds of each side per 1,000 commands (or transactions), from /proc; machine busy % includes "
              "other jobs on the machine, and the next column is their share (busy minus the processes measured): "
              "a step that other jobs took cores from has a lower throughput at the same CPU per command. "
              "Commands per commit from orderd's /metrics (group commit).", "",
              "| step | machine busy | of it other jobs | orderd | postgres | load generator | kafka mock | peer (node) |"
              " commands per commit |",
              "|---|---|---|---|---|---|---|---|---|"]
        counts = step_counts(b)
        ncpu = os.cpu_count() or 1
        for name, cp in b.cpu.items():
            n = counts.get(name)
            label = ("rebuild, the timed rebuild alone, per 1,000 events (the orderd column is bench_store, "
                     "which runs orderctl's rebuild)" if name == "rebuild" and n else name)
            per = (lambda k: f"{1000 * cp[k] / n:.2f} s") if n else (lambda k: f"{cp[k]:.1f} s total")
            if name == "rebuild" and n:   # a few ms per 1,000 events
                per = lambda k: f"{1e6 * cp[k] / n:.1f} ms"
            cpc = cp.get("commands_per_commit")
            ours = sum(cp.get(k, 0.0) for k in MEASURED)
            others = (f"{max(0.0, cp['machine_busy_pct'] - 100.0 * ours / (cp['t'] * ncpu)):.0f}%"
                      if cp.get("t") else "–")
            L.append(f"| {label} | {cp['machine_busy_pct']:.0f}% | {others} | {per('orderd')} | {per('postgres')} | "
                     f"{per('loadgen')} | {per('kafka')} | {per('peer') if getattr(b, 'peers', False) and 'peer' in cp else '–'} | "
                     f"{fmt(cpc, 1) if cpc else '–'} |")
    notes = os.path.join(ROOT, "bench", "NOTES.md")
    if not b.quick and os.path.exists(notes):
        L += ["", open(notes).read().rstrip()]
    if b.profiles:
        L += ["", "## Profiles of this run", "",
              "`perf record -g -F 499 -p <pids>` of the processes of a step (orderd or bench_store, and every "
              "PostgreSQL process of the cluster), each in a window of its own after the timed step (perf costs "
              "CPU: no timed figure carries it); self time (`--no-children`), perf's tables with entries above "
              "1.5%. \"Where the time goes\" is computed from every thread's share (`--sort pid,dso`), grouped by "
              "process role (PostgreSQL processes by their title, orderd's threads by name)."]
        for name, rep in b.profiles.items():
            L += ["", f"### Profile {name}", ""]
            if rep.get("what"):
                L += [f"Profiled: {rep['what']}.", ""]
            summary = where_time_goes(rep)
            if summary:
                L += summary + [""]
            L += ["By process and object:", "", "```"] + rep["by_process"] + ["```", "",
                  "By symbol:", "", "```"] + rep["by_symbol"] + ["```"]
    crashes = getattr(b, "crashes", [])
    if crashes:
        L += ["", "## orderd crashed under load", "",
              f"orderd died {len(crashes)} time(s) in this run; each time the benchmark restarted it and ran the step "
              "again once (a step whose second attempt crashed too has no figure). Stack of the crashing thread, "
              "from the core file:"]
        for c in crashes:
            L += ["", f"During step `{c['step']}`:", "", "```"] + c["report"].splitlines()[:40] + ["```"]
    if b.errors:
        L += ["", "## Errors", ""] + [f"- {e.splitlines()[0]}" for e in b.errors]
    L += ["", "Raw figures: `results.json`; per-step detail of the run: `<build>/bench-work/detail.json`.", ""]
    return "\n".join(L)
