#!/usr/bin/env python3
"""The report of bench/compare.sh: compare-report.py RESULTS_DIR.

Reads what compare.sh measured in RESULTS_DIR (raw.tsv: one row per wrk
run; open.tsv: the hey runs; scale.jsonl: idle connections, RSS, seeding;
meta.env: machine and settings) and writes report.md with medians, p50/p99,
CPU per request and memory, plus gnuplot charts (PNG) beside it:
throughput.png, latency.png, concurrency.png, openloop.png, rss.png.
Standard library only; gnuplot does the drawing.
"""

import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

SERVERS = ("c", "fastify")
LABEL = {"c": "api (C)", "fastify": "Fastify"}
WORKLOADS = [
    ("W1", "GET /health/live"),
    ("W2", "GET /v1/users/{id} (cached)"),
    ("W3", "GET /v1/users?limit=20&cursor= (walk)"),
    ("W4", "POST /v1/users + Idempotency-Key"),
    ("W5", "PATCH /v1/users/{id} + If-Match"),
    ("MIX", "90 % GET one / 10 % PATCH"),
]


def med(xs):
    return statistics.median(xs) if xs else 0.0


def fmt_int(x):
    return f"{x:,.0f}"


def ms(us):
    return f"{float(us) / 1000:.2f}"


def ratio(a, b):
    return f"{a / b:.2f}" if b else "n/a"


def load(out):
    with open(out / "raw.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for r in rows:
        for k in ("rps", "p50_us", "p75_us", "p90_us", "p99_us", "p999_us", "max_us", "cpu_us_per_req",
                  "db_cpu_us_per_req"):
            r[k] = float(r[k])
        for k in ("conns", "non2xx", "sock_errors", "rss_max_kib", "requests", "round"):
            r[k] = int(r[k])
    opens = []
    if (out / "open.tsv").exists():
        with open(out / "open.tsv") as f:
            opens = list(csv.DictReader(f, delimiter="\t"))
    scale = [json.loads(line) for line in (out / "scale.jsonl").read_text().splitlines() if line.strip()]
    meta = {}
    for line in (out / "meta.env").read_text().splitlines():
        k, _, v = line.partition("=")
        meta[k] = v
    return rows, opens, scale, meta


def summarize(rows, kind, workload, server):
    rs = [r for r in rows if r["kind"] == kind and r["workload"] == workload and r["server"] == server]
    if not rs:
        return None
    return {
        "runs": [r["rps"] for r in rs],
        "rps": med([r["rps"] for r in rs]),
        "p50": med([r["p50_us"] for r in rs]),
        "p90": med([r["p90_us"] for r in rs]),
        "p99": med([r["p99_us"] for r in rs]),
        "p999": med([r["p999_us"] for r in rs]),
        "cpu": med([r["cpu_us_per_req"] for r in rs]),
        "db": med([r["db_cpu_us_per_req"] for r in rs]),
        "non2xx": sum(r["non2xx"] for r in rs),
        "sock": sum(r["sock_errors"] for r in rs),
        "rss": max(r["rss_max_kib"] for r in rs),
        "requests": sum(r["requests"] for r in rs),
    }


def gnuplot(out, name, script):
    (out / f"{name}.gp").write_text(script)
    subprocess.run(["gnuplot", f"{name}.gp"], cwd=out, check=True)


HEAD = """set terminal pngcairo size 1000,560 font ",10"
set key top left
set grid ytics
set style line 1 lc rgb "#1f77b4" lw 2 pt 7
set style line 2 lc rgb "#d62728" lw 2 pt 5
set style line 3 lc rgb "#1f77b4" lw 2 pt 7 dt 2
set style line 4 lc rgb "#d62728" lw 2 pt 5 dt 2
"""


def charts(out, rows, opens, summ):
    # Throughput per workload.
    with open(out / "throughput.dat", "w") as f:
        f.write("# workload c fastify\n")
        for w, _ in WORKLOADS:
            c, fa = summ.get((w, "c")), summ.get((w, "fastify"))
            if c and fa:
                f.write(f"{w} {c['rps']:.1f} {fa['rps']:.1f}\n")
    gnuplot(out, "throughput", HEAD + """set output "throughput.png"
set title "Throughput per workload (median req/s, higher is better)"
set style data histograms
set style histogram clustered gap 1
set key outside bottom center horizontal
set style fill solid 0.85 border -1
set logscale y
set ylabel "requests per second (log scale)"
plot "throughput.dat" using 2:xtic(1) title "api (C)" lc rgb "#1f77b4", \\
     "" using 3 title "Fastify" lc rgb "#d62728"
""")
    # Latency percentiles per workload.
    with open(out / "latency.dat", "w") as f:
        f.write("# workload c_p50 f_p50 c_p99 f_p99 c_p999 f_p999\n")
        for w, _ in WORKLOADS:
            c, fa = summ.get((w, "c")), summ.get((w, "fastify"))
            if c and fa:
                f.write(f"{w} {c['p50'] / 1000:.3f} {fa['p50'] / 1000:.3f} {c['p99'] / 1000:.3f} "
                        f"{fa['p99'] / 1000:.3f} {c['p999'] / 1000:.3f} {fa['p999'] / 1000:.3f}\n")
    gnuplot(out, "latency", HEAD + """set output "latency.png"
set title "Latency percentiles per workload (median of rounds, lower is better)"
set style data histograms
set style histogram clustered gap 1
set key outside bottom center horizontal
set style fill solid 0.85 border -1
set logscale y
set ylabel "milliseconds (log scale)"
plot "latency.dat" using 2:xtic(1) title "api p50" lc rgb "#1f77b4", \\
     "" using 3 title "Fastify p50" lc rgb "#d62728", \\
     "" using 4 title "api p99" lc rgb "#6baed6", \\
     "" using 5 title "Fastify p99" lc rgb "#fc9272", \\
     "" using 6 title "api p99.9" lc rgb "#c6dbef", \\
     "" using 7 title "Fastify p99.9" lc rgb "#fee0d2"
""")
    # Latency vs concurrency.
    conc = sorted({r["conns"] for r in rows if r["kind"] == "conc"})
    with open(out / "concurrency.dat", "w") as f:
        f.write("# conns c_p50 c_p99 f_p50 f_p99 c_rps f_rps\n")
        for n in conc:
            vals = []
            for s in SERVERS:
                rs = [r for r in rows if r["kind"] == "conc" and r["conns"] == n and r["server"] == s]
                vals.append(rs[0] if rs else None)
            if all(vals):
                c, fa = vals
                f.write(f"{n} {c['p50_us'] / 1000:.3f} {c['p99_us'] / 1000:.3f} {fa['p50_us'] / 1000:.3f} "
                        f"{fa['p99_us'] / 1000:.3f} {c['rps']:.1f} {fa['rps']:.1f}\n")
    gnuplot(out, "concurrency", HEAD + """set output "concurrency.png"
set title "W2 cached read: latency vs concurrency (wrk connections)"
set logscale x 2
set logscale y
set xlabel "connections"
set ylabel "milliseconds (log scale)"
set y2label "requests per second"
set y2tics
set ytics nomirror
plot "concurrency.dat" using 1:2 with linespoints ls 1 title "api p50", \\
     "" using 1:3 with linespoints ls 3 title "api p99", \\
     "" using 1:4 with linespoints ls 2 title "Fastify p50", \\
     "" using 1:5 with linespoints ls 4 title "Fastify p99", \\
     "" using 1:6 axes x1y2 with lines lc rgb "#9ecae1" lw 1 title "api req/s (right)", \\
     "" using 1:7 axes x1y2 with lines lc rgb "#fcbba1" lw 1 title "Fastify req/s (right)"
""")
    # Open loop.
    rates = sorted({int(o["target_rps"]) for o in opens})
    with open(out / "openloop.dat", "w") as f:
        f.write("# rate c_p50 c_p99 f_p50 f_p99\n")
        for rate in rates:
            vals = [next((o for o in opens if o["server"] == s and int(o["target_rps"]) == rate), None)
                    for s in SERVERS]
            if all(vals):
                c, fa = vals
                f.write(f"{rate} {float(c['p50_us']) / 1000:.3f} {float(c['p99_us']) / 1000:.3f} "
                        f"{float(fa['p50_us']) / 1000:.3f} {float(fa['p99_us']) / 1000:.3f}\n")
    gnuplot(out, "openloop", HEAD + """set output "openloop.png"
set title "Open loop (hey -q, fixed request rate): W2 latency vs offered load"
set logscale y
set xlabel "offered requests per second"
set xrange [0:*]
set ylabel "milliseconds (log scale)"
plot "openloop.dat" using 1:2 with linespoints ls 1 title "api p50", \\
     "" using 1:3 with linespoints ls 3 title "api p99", \\
     "" using 1:4 with linespoints ls 2 title "Fastify p50", \\
     "" using 1:5 with linespoints ls 4 title "Fastify p99"
""")
    # RSS under load.
    with open(out / "rss.dat", "w") as f:
        f.write("# workload c fastify\n")
        for w, _ in WORKLOADS:
            c, fa = summ.get((w, "c")), summ.get((w, "fastify"))
            if c and fa:
                f.write(f"{w} {c['rss'] / 1024:.1f} {fa['rss'] / 1024:.1f}\n")
    gnuplot(out, "rss", HEAD + """set output "rss.png"
set title "Resident memory under load (max sampled during the runs, all processes)"
set style data histograms
set style histogram clustered gap 1
set key outside bottom center horizontal
set style fill solid 0.85 border -1
set ylabel "MiB"
set yrange [0:*]
plot "rss.dat" using 2:xtic(1) title "api (C)" lc rgb "#1f77b4", \\
     "" using 3 title "Fastify" lc rgb "#d62728"
""")


def report(out, rows, opens, scale, meta):
    summ = {}
    for w, _ in WORKLOADS:
        for s in SERVERS:
            x = summarize(rows, "run", w, s)
            if x:
                summ[(w, s)] = x
    charts(out, rows, opens, summ)
    L = []
    L.append("# api (C) vs Fastify: comparison report")
    L.append("")
    if meta.get("smoke") == "1":
        L.append("**Smoke run** (seconds per workload): these numbers only show that the harness works.")
        L.append("")
    L.append(f"- date: {meta.get('date')}; machine: {meta.get('cpu')}, {meta.get('memory')}, Linux {meta.get('kernel')}")
    L.append(f"- {meta.get('api_version')}; Node.js {meta.get('node')}, Fastify {meta.get('fastify')}; "
             f"PostgreSQL {meta.get('postgres')} (durable: {'fsync on' if meta.get('durable') == '1' else 'fsync off'}), "
             f"Redis {meta.get('redis')}")
    L.append(f"- wrk {meta.get('wrk')}; both servers: `{meta.get('settings')}`")
    L.append(f"- the whole run took {meta.get('seconds')} s")
    L.append("")
    L.append("## Throughput and latency (medians of the rounds)")
    L.append("")
    L.append("| workload | server | median req/s | runs | p50 ms | p99 ms | p99.9 ms | server CPU µs/req | PostgreSQL + Redis CPU µs/req | non-2xx | socket errors |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for w, title in WORKLOADS:
        for s in SERVERS:
            x = summ.get((w, s))
            if not x:
                continue
            runs = " · ".join(fmt_int(v) for v in x["runs"])
            L.append(f"| {w} {title} | {LABEL[s]} | {fmt_int(x['rps'])} | {runs} | {ms(x['p50'])} | "
                     f"{ms(x['p99'])} | {ms(x['p999'])} | {x['cpu']:.1f} | {x['db']:.1f} | {x['non2xx']} | {x['sock']} |")
    L.append("")
    L.append("| workload | req/s ratio api/Fastify | CPU per request ratio Fastify/api |")
    L.append("|---|---|---|")
    for w, title in WORKLOADS:
        c, fa = summ.get((w, "c")), summ.get((w, "fastify"))
        if c and fa:
            L.append(f"| {w} {title} | **{ratio(c['rps'], fa['rps'])}** | {ratio(fa['cpu'], c['cpu'])} |")
    L.append("")
    L.append("![throughput](throughput.png)")
    L.append("")
    L.append("![latency percentiles](latency.png)")
    L.append("")
    L.append("## Memory")
    L.append("")
    by = {(d.get("check"), d.get("server")): d for d in scale}
    L.append("| server | RSS idle (MiB) | peak RSS, VmHWM summed over processes (MiB) | max RSS under load per workload (MiB) |")
    L.append("|---|---|---|---|")
    for s in SERVERS:
        idle = by.get(("rss_idle", s), {}).get("kib", 0) / 1024
        peak = by.get(("rss_peak", s), {}).get("kib", 0) / 1024
        loads = ", ".join(f"{w} {summ[(w, s)]['rss'] / 1024:.1f}" for w, _ in WORKLOADS if (w, s) in summ)
        L.append(f"| {LABEL[s]} | {idle:.1f} | {peak:.1f} | {loads} |")
    L.append("")
    L.append("![RSS under load](rss.png)")
    L.append("")
    idle = {s: by.get(("idle", s), {}).get("result", {}) for s in SERVERS}
    if any(idle.values()):
        L.append("### Idle keep-alive connections")
        L.append("")
        L.append("| server | connections | still open | RSS before (MiB) | RSS with them (MiB) | KiB per connection |")
        L.append("|---|---|---|---|---|---|")
        for s in SERVERS:
            r = idle[s]
            if "count" in r:
                L.append(f"| {LABEL[s]} | {r['count']:,} | {r['open']:,} | {r['rss_before_kib'] / 1024:.1f} | "
                         f"{r['rss_after_kib'] / 1024:.1f} | {r['per_conn_kib']:.2f} |")
            else:
                L.append(f"| {LABEL[s]} | failed: {r} | | | | |")
        L.append("")
    L.append("## Latency vs concurrency (W2)")
    L.append("")
    L.append("| connections | api req/s | api p50 / p99 ms | Fastify req/s | Fastify p50 / p99 ms |")
    L.append("|---|---|---|---|---|")
    for n in sorted({r["conns"] for r in rows if r["kind"] == "conc"}):
        get = {s: next((r for r in rows if r["kind"] == "conc" and r["conns"] == n and r["server"] == s), None)
               for s in SERVERS}
        if all(get.values()):
            c, fa = get["c"], get["fastify"]
            L.append(f"| {n} | {fmt_int(c['rps'])} | {ms(c['p50_us'])} / {ms(c['p99_us'])} | "
                     f"{fmt_int(fa['rps'])} | {ms(fa['p50_us'])} / {ms(fa['p99_us'])} |")
    L.append("")
    L.append("![latency vs concurrency](concurrency.png)")
    L.append("")
    L.append("## Open loop: fixed request rates (W2, hey -q)")
    L.append("")
    L.append("Requests leave on a schedule whatever the answers do, so latency is not hidden by a load "
             "generator that waits (coordinated omission). An achieved rate below the offered one means "
             "the server (or the machine) could not keep up.")
    L.append("")
    L.append("| offered req/s | server | achieved req/s | p50 ms | p90 ms | p99 ms | non-200 | errors |")
    L.append("|---|---|---|---|---|---|---|---|")
    for o in sorted(opens, key=lambda o: (int(o["target_rps"]), o["server"])):
        L.append(f"| {int(o['target_rps']):,} | {LABEL[o['server']]} | {float(o['achieved_rps']):,.0f} | "
                 f"{ms(o['p50_us'])} | {ms(o['p90_us'])} | {ms(o['p99_us'])} | {o['non200']} | {o['errors']} |")
    L.append("")
    L.append("![open loop](openloop.png)")
    L.append("")
    L.append("## List latency at depth (keyset pages, limit=20, wrk -c16)")
    L.append("")
    L.append("| rows | page | api req/s | api p50 / p99 ms | Fastify req/s | Fastify p50 / p99 ms |")
    L.append("|---|---|---|---|---|---|")
    depth = sorted({r["workload"] for r in rows if r["kind"] == "depth"},
                   key=lambda w: (int(w.split("-")[1]), w))
    for w in depth:
        page, n = w.split("-")
        get = {s: next((r for r in rows if r["kind"] == "depth" and r["workload"] == w and r["server"] == s), None)
               for s in SERVERS}
        if all(get.values()):
            c, fa = get["c"], get["fastify"]
            L.append(f"| {int(n):,} | {page} | {fmt_int(c['rps'])} | {ms(c['p50_us'])} / {ms(c['p99_us'])} | "
                     f"{fmt_int(fa['rps'])} | {ms(fa['p50_us'])} / {ms(fa['p99_us'])} |")
    seed = by.get(("big_seed", None))
    if seed:
        L.append("")
        L.append(f"Seeding to {seed['rows']:,} rows took {seed['seconds']} s.")
    L.append("")
    L.append("Raw data: `raw.tsv` (one row per wrk run), `open.tsv`, `scale.jsonl`; every tool's output in `wrk/` and `hey/`.")
    (out / "report.md").write_text("\n".join(L) + "\n")
    # A short summary on stdout for the terminal and CI logs.
    print("workload  server    median req/s   p50 ms   p99 ms  CPU us/req  non-2xx")
    for w, _ in WORKLOADS:
        for s in SERVERS:
            x = summ.get((w, s))
            if x:
                print(f"{w:<9} {s:<8} {x['rps']:>14,.0f} {x['p50'] / 1000:>8.2f} {x['p99'] / 1000:>8.2f} "
                      f"{x['cpu']:>11.1f} {x['non2xx']:>8}")


def main():
    out = Path(sys.argv[1]).resolve()
    rows, opens, scale, meta = load(out)
    report(out, rows, opens, scale, meta)


if __name__ == "__main__":
    main()
