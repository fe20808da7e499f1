#!/usr/bin/env python3
"""bench/analyze.py — turns bench/results.csv (one row per run, written by
bench/run.sh) into bench/RESULTS.md and bench/chart.svg.

Per workload and allocator: median wall time, spread (min-max), median peak
RSS and median page faults per 1,000 operations over the successful timed
runs, system calls per 1,000 operations from the one untimed strace run (rep
"count"), and how many runs failed. Across workloads:
geometric means of the median time relative to mimalloc and to glibc, and of
the median peak RSS relative to mimalloc. A workload enters an allocator's
geometric mean only if both that allocator and the baseline have at least one
successful run of it; the count is shown next to the mean.

Standard library only (the machine has python3 but no pip packages)."""

import argparse
import csv
import datetime
import math
import os
import platform
import shutil
import statistics
import subprocess
from collections import defaultdict

# What each workload models, one line each (the long form is in README.md).
DESCRIPTIONS = {
    "pairs-64": "malloc(64)+free in a loop: the fast path, nothing live",
    "pairs-1024": "malloc(1024)+free in a loop: the fast path of a larger class",
    "workingset": "10,000 live blocks of 16..512 B, one replaced at random per step",
    "churn": "big-number arithmetic (Fibonacci two ways, decimal conversion): "
    "heavy short-lived small-object churn, the role of cfrac/espresso",
    "server": "Larson shape: 2 threads swap blocks of 16..1024 B into a shared "
    "table and free what they displace (cross-thread frees, random lifetimes)",
    "prodcons": "xmalloc shape: one thread allocates 16..512 B blocks, another frees them",
    "falseshare": "cache-scratch/thrash shape: 2 threads allocate 8..64 B objects "
    "and write them hard; adjacent blocks in different threads show as slowdown",
    "strings": "string builders/vectors: realloc growth (doubling and exact) "
    "to 16 B..64 KiB, 64 live",
    "large": "64 KiB..32 MiB blocks, 8 live, one replaced per step, every page touched",
    "fragmentation": "phases of different size mixes, 90% freed each phase; "
    "memory, not speed: see final RSS",
    "threadchurn": "threads start, allocate 2,000 blocks, hand half to the next "
    "round's threads, exit",
    "realloc-64k": "100 buffers grown by realloc from 16 B to 64 KiB in random steps "
    "(1 B..2 KiB), one buffer at random per step, freed and restarted when full",
    "realloc-1m": "25 buffers grown by realloc from 16 B to 1 MiB in random steps "
    "(1 B..32 KiB), one buffer at random per step, freed and restarted when full",
    "window": "a window of 4 live blocks of 64 KiB..8 MiB; the oldest is replaced each step "
    "and every page of the new block is written once",
}


def run(command):
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""


def machine_facts():
    facts = {}
    lscpu = run(["lscpu"])
    for line in lscpu.splitlines():
        key, _, value = line.partition(":")
        facts[key.strip()] = value.strip()
    meminfo = {}
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                meminfo[key] = value.strip()
    except OSError:
        pass
    flags = facts.get("Flags", "").split()
    libc = " ".join(platform.libc_ver())
    gcc = run(["gcc", "--version"]).splitlines()
    return {
        "cpu": facts.get("Model name", "unknown"),
        "cpus": facts.get("CPU(s)", str(os.cpu_count())),
        "threads_per_core": facts.get("Thread(s) per core", "?"),
        "hypervisor": facts.get("Hypervisor vendor", ""),
        "memory": (f"{int(meminfo['MemTotal'].split()[0]) / 1048576:.1f} GiB"
                   if "MemTotal" in meminfo else "?"),
        "kernel": platform.release(),
        "libc": libc,
        "gcc": gcc[0] if gcc else "?",
        "pku": "pku" in flags,
    }


def package_versions():
    names = ["libjemalloc2", "libmimalloc2.0", "libtcmalloc-minimal4",
             "libclang-rt-14-dev", "libc6"]
    out = run(["dpkg-query", "-W", "-f=${Package} ${Version}\\n"] + names)
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def git_revision():
    revision = run(["git", "rev-parse", "--short", "HEAD"]).strip() or "unknown"
    dirty = run(["git", "status", "--porcelain", "--untracked-files=no", "src",
                 "include", "policy"]).strip()
    return revision + (" (with uncommitted changes in src/, include/ or policy/)" if dirty else "")


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def fmt_ratio(value):
    return "–" if value is None else f"{value:.2f}"


def fmt_mib(kb):
    return "–" if kb is None else f"{kb / 1024:.1f}"


def fmt_rate(value):
    """Events per 1,000 operations span nine orders of magnitude across the
    workloads (start-up system calls spread over 100 million pairs, page
    faults of 8 MiB blocks): three significant digits or so, never 0.00 for
    a count that is not zero."""
    if value is None:
        return "–"
    if value == 0:
        return "0"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 0.01:
        return f"{value:.2f}"
    return f"{value:.1e}"


def number(row, key):
    """A numeric column of results.csv, None when empty or absent (a csv
    written before the column existed)."""
    try:
        return float(row.get(key) or "")
    except ValueError:
        return None


def run_ops(row):
    """The operations a run did: the ops column, or ops= in its result line."""
    ops = number(row, "ops")
    return ops if ops is not None else output_field(row.get("output", ""), "ops")


def per_1k_ops(count, ops):
    return count / ops * 1000 if count is not None and ops else None


def output_field(output, key):
    for word in output.split():
        name, _, value = word.partition("=")
        if name == key:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--csv", required=True)
    parser.add_argument("--markdown", required=True)
    parser.add_argument("--svg", required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--reps", default="?")
    parser.add_argument("--quick", default="0")
    parser.add_argument("--timeout", default="?")
    parser.add_argument("--allocators", default="")
    parser.add_argument("--notes", default="")
    args = parser.parse_args()

    rows = []
    with open(args.csv, newline="") as handle:
        rows = list(csv.DictReader(handle))

    workloads = []
    allocators = args.allocators.split()
    for row in rows:
        if row["workload"] not in workloads:
            workloads.append(row["workload"])
        if row["allocator"] not in allocators:
            allocators.append(row["allocator"])

    runs = defaultdict(list)  # (workload, allocator) -> timed rows
    counts = defaultdict(list)  # (workload, allocator) -> strace rows (rep "count")
    for row in rows:
        table = counts if row["rep"] == "count" else runs
        table[(row["workload"], row["allocator"])].append(row)

    def ok_rows(workload, allocator):
        return [r for r in runs[(workload, allocator)] if r["status"] == "ok"]

    median_time, median_rss, median_faults, syscall_rate = {}, {}, {}, {}
    for workload in workloads:
        for allocator in allocators:
            good = ok_rows(workload, allocator)
            if good:
                median_time[(workload, allocator)] = statistics.median(
                    float(r["wall_s"]) for r in good)
                median_rss[(workload, allocator)] = statistics.median(
                    float(r["max_rss_kb"]) for r in good)
                # Minor + major: a major fault (disk read) should not happen
                # here at all; if one does it is still the allocator's fault.
                faults = []
                for r in good:
                    minor, major = number(r, "minor_faults"), number(r, "major_faults")
                    rate = per_1k_ops(None if minor is None else minor + (major or 0),
                                      run_ops(r))
                    if rate is not None:
                        faults.append(rate)
                if faults:
                    median_faults[(workload, allocator)] = statistics.median(faults)
            counted = [r for r in counts[(workload, allocator)] if r["status"] == "ok"]
            rates = [per_1k_ops(number(r, "syscalls"), run_ops(r)) for r in counted]
            rates = [rate for rate in rates if rate is not None]
            if rates:
                syscall_rate[(workload, allocator)] = statistics.median(rates)

    def relative(table, allocator, baseline):
        ratios, counted = [], []
        for workload in workloads:
            mine, base = table.get((workload, allocator)), table.get((workload, baseline))
            if mine is not None and base:
                # A 0.00 s reading (a run faster than GNU time's resolution)
                # would make the log undefined: clamp to 10 ms.
                ratios.append(max(mine, 0.01) / max(base, 0.01))
                counted.append(workload)
        return geomean(ratios), len(counted)

    failures = [r for r in rows if r["status"] != "ok"]
    baseline = "mimalloc" if "mimalloc" in allocators else "glibc"

    lines = []
    add = lines.append
    facts = machine_facts()
    versions = package_versions()
    # The date of the runs, not of this analysis: results.csv's last write.
    now = datetime.datetime.fromtimestamp(os.path.getmtime(args.csv)).astimezone().strftime(
        "%Y-%m-%d %H:%M %Z")
    quick = args.quick == "1"
    add("# Benchmark results")
    add("")
    add(f"Written by `make bench{' QUICK=1' if quick else ''}` (bench/run.sh, bench/analyze.py) "
        f"on {now}, bulwark at commit {git_revision()}. Raw runs: "
        "[results.csv](results.csv); chart: [chart.svg](chart.svg).")
    if quick:
        add("")
        add("**QUICK run**: workloads are about 5x smaller than the full sizes and each was "
            "repeated only 3 times; use these numbers for a smoke test, not for conclusions.")
    add("")
    add("## Machine")
    add("")
    add(f"- CPU: {facts['cpu']}, {facts['cpus']} logical CPUs "
        f"({facts['threads_per_core']} thread(s) per core)"
        + (f", virtual machine ({facts['hypervisor']})" if facts["hypervisor"] else ""))
    add(f"- Memory: {facts['memory']}; kernel {facts['kernel']}; {facts['libc']}; {facts['gcc']}")
    # strict and fuzz write-protect their metadata with a protection key
    # where the CPU has them: a third of strict's time (ABLATION-strict.md).
    if facts["pku"]:
        add("- Memory protection keys: yes (pku): strict and fuzz keep their metadata "
            "write-protected between calls, as in production on such CPUs.")
    else:
        add("- Memory protection keys: **none** (no pku flag): strict and fuzz run without "
            "their metadata protection key, which costs strict about a third of its time "
            "where the CPU has keys (bench/ABLATION-strict.md); their rows are faster here "
            "than they would be there.")
    add("- Allocators: bulwark (built here, one row per profile in policy/), glibc "
        f"{versions.get('libc6', '?')} (no preload), jemalloc {versions.get('libjemalloc2', '?')}, "
        f"mimalloc {versions.get('libmimalloc2.0', '?')}, tcmalloc (gperftools minimal) "
        f"{versions.get('libtcmalloc-minimal4', '?')}, scudo (LLVM compiler-rt standalone) "
        f"{versions.get('libclang-rt-14-dev', '?')} — Debian 12 packages, default settings.")
    if args.notes.strip():
        add(f"- Not measured: {', '.join(args.notes.split())}")
    load = {}
    for name in ("loadavg.start", "loadavg.end", "duration"):
        try:
            with open(os.path.join(args.work_dir, name)) as handle:
                load[name] = handle.read().strip()
        except OSError:
            pass
    if "loadavg.start" in load and "loadavg.end" in load:
        took = f"; the runs took {load['duration']} s" if "duration" in load else ""
        add(f"- Load average (1, 5, 15 min) when the runs started: {load['loadavg.start']}; "
            f"when they ended: {load['loadavg.end']}{took} "
            f"(above {facts['cpus']} means other jobs competed for the CPUs).")
    add("- The machine is shared with other jobs (test suites of other developers may run "
        "at the same time), so single runs are noisy: read the medians and the spreads.")
    add("")
    add("## Method")
    add("")
    add(f"- Every workload (bench/*.c, `gcc -O2`, one small C program each, checking its own "
        f"results) runs under every allocator; allocators other than glibc are loaded with "
        f"`LD_PRELOAD` set in the workload's own environment only.")
    add(f"- Runs are interleaved — for each workload, repetition 1 runs every allocator once, "
        f"then repetition 2, … — and the starting allocator rotates each repetition, so a "
        f"slow spell of the shared machine spreads over all allocators. {args.reps} "
        f"repetitions per workload and allocator.")
    add("- Wall time, peak RSS (maximum resident set size) and page faults come from GNU "
        "time (`/usr/bin/time -f '%e %M %R %F'`, the same timed runs); wall time has 10 ms "
        "resolution. faults/1k ops is (minor + major faults) per 1,000 operations, median "
        "over the timed runs.")
    add("- Operations (`ops=` in each result line) are the allocation calls the workload "
        "itself makes — malloc, calloc and realloc; each block is freed once too. Calls "
        "made inside the C library (stdio buffers, thread set-up) are not counted.")
    if counts:
        add("- System calls are counted in a separate, untimed run: after a workload's timed "
            "repetitions, each allocator runs it once more, same arguments, under "
            "`strace -f -c` (threads included; LD_PRELOAD is passed with strace's `-E`, to "
            "the traced program only). The count includes the "
            "process's start-up and the allocator's initialisation (about 35 calls under glibc, "
            "up to about 145 under bulwark; see bench/README.md), which matters only for "
            "workloads with few operations (window: about 2,000). ptrace stops at every "
            "system call, so this run's time is not used; its rows in results.csv have "
            "rep `count`.")
    add(f"- A run that exits non-zero, crashes, prints other than one line, or exceeds "
        f"{args.timeout} s is recorded as `fail`/`timeout` in results.csv and listed below; "
        "it is left out of the medians. After a timeout the remaining repetitions of that "
        "allocator on that workload are `skipped`.")
    add("- Geometric means are over the per-workload medians, relative to the baseline "
        "allocator's median on the same workload; a workload counts only where both have a "
        "successful run (the count is shown). Below 1.00 is better (faster / smaller).")
    add("- fragmentation's time includes a 300 ms pause (so delayed purging can happen "
        "before its final RSS is read); its interesting numbers are the RSS columns.")
    add("")
    add("## Summary: geometric means over all workloads")
    add("")
    total_workloads = len(workloads)
    add(f"| allocator | time vs mimalloc | time vs glibc | peak RSS vs mimalloc | "
        f"workloads counted | failed runs |")
    add("|---|---:|---:|---:|---:|---:|")
    for allocator in allocators:
        vs_mi, n_mi = relative(median_time, allocator, "mimalloc")
        vs_glibc, _ = relative(median_time, allocator, "glibc")
        rss_mi, _ = relative(median_rss, allocator, "mimalloc")
        failed = sum(1 for r in failures if r["allocator"] == allocator)
        add(f"| {allocator} | {fmt_ratio(vs_mi)} | {fmt_ratio(vs_glibc)} | {fmt_ratio(rss_mi)} "
            f"| {n_mi}/{total_workloads} | {failed} |")
    add("")
    add("![relative time per workload](chart.svg)")
    add("")
    # Thread scaling: the 2-thread workload does twice the 1-thread one's
    # work, so throughput(2 threads) / throughput(1 thread) = 2 * t1 / t2.
    scaling_pairs = [(w, w + "-1t") for w in ("server", "falseshare") if w + "-1t" in workloads]
    if scaling_pairs:
        add("## Thread scaling: throughput of 2 threads / 1 thread (2 cores; 2.00 is perfect)")
        add("")
        add("| allocator | " + " | ".join(w for w, _ in scaling_pairs) + " |")
        add("|---|" + "---:|" * len(scaling_pairs))
        for allocator in allocators:
            cells = []
            for two, one in scaling_pairs:
                t2, t1 = median_time.get((two, allocator)), median_time.get((one, allocator))
                cells.append(f"{2 * t1 / t2:.2f}" if t1 and t2 else "n/a")
            add(f"| {allocator} | " + " | ".join(cells) + " |")
        add("")
    add("## Per workload")
    for workload in workloads:
        add("")
        add(f"### {workload}")
        add("")
        if workload in DESCRIPTIONS:
            add(DESCRIPTIONS[workload] + ".")
            add("")
        first_ok = next((r for r in rows
                         if r["workload"] == workload and r["status"] == "ok"), None)
        sample = first_ok["output"] if first_ok else ""
        if sample:
            add(f"Result line ({first_ok['allocator']}, repetition {first_ok['rep']}): "
                f"`{sample}`")
            add("")
        has_final = output_field(sample, "final_rss_kb") is not None
        header = (f"| allocator | median time (s) | spread min–max (s) | time vs {baseline} | "
                  f"median peak RSS (MiB) | faults/1k ops | syscalls/1k ops |")
        rule = "|---|---:|---:|---:|---:|---:|---:|"
        if has_final:
            header += " median final RSS (MiB) | live at end (MiB) |"
            rule += "---:|---:|"
        header += " ok runs |"
        rule += "---:|"
        add(header)
        add(rule)
        for allocator in allocators:
            all_runs = runs[(workload, allocator)]
            if not all_runs:
                continue
            good = ok_rows(workload, allocator)
            line = f"| {allocator} |"
            syscalls = fmt_rate(syscall_rate.get((workload, allocator)))
            if good:
                times = [float(r["wall_s"]) for r in good]
                base = median_time.get((workload, baseline))
                ratio = (median_time[(workload, allocator)] / base) if base else None
                line += (f" {median_time[(workload, allocator)]:.2f} | "
                         f"{min(times):.2f}–{max(times):.2f} | {fmt_ratio(ratio)} | "
                         f"{fmt_mib(median_rss[(workload, allocator)])} | "
                         f"{fmt_rate(median_faults.get((workload, allocator)))} | {syscalls} |")
                if has_final:
                    finals = [output_field(r["output"], "final_rss_kb") for r in good]
                    lives = [output_field(r["output"], "live_kb") for r in good]
                    finals = [v for v in finals if v is not None]
                    lives = [v for v in lives if v is not None]
                    line += (f" {fmt_mib(statistics.median(finals)) if finals else '–'} |"
                             f" {fmt_mib(statistics.median(lives)) if lives else '–'} |")
            else:
                statuses = {r["status"] for r in all_runs}
                word = "timeout" if "timeout" in statuses else "fail"
                line += f" {word} | – | – | – | – | {syscalls} |" + (" – | – |" if has_final else "")
            line += f" {len(good)}/{len(all_runs)} |"
            add(line)

    add("")
    add("## Failed runs")
    add("")
    if not failures:
        add("None: every run of every workload under every allocator succeeded.")
    else:
        add("| workload | allocator | rep | status | exit | first line of stderr | reproduce |")
        add("|---|---|---:|---|---:|---|---|")
        for r in failures:
            message = ""
            log = os.path.join(args.work_dir, "logs",
                               f"{r['workload']}.{r['allocator']}.{r['rep']}.stderr")
            try:
                with open(log, errors="replace") as handle:
                    for text in handle:
                        if text.strip() and not text.startswith("Command "):
                            message = text.strip()
                            break
            except OSError:
                message = r["output"]
            message = message.replace("|", "\\|")[:160]
            command = ""
            try:
                with open(log[: -len(".stderr")] + ".cmd") as handle:
                    command = f"`{handle.read().strip()}`"
            except OSError:
                pass
            add(f"| {r['workload']} | {r['allocator']} | {r['rep']} | {r['status']} | "
                f"{r['exit_code'] or '–'} | {message or r['output'] or '–'} | {command or '–'} |")
        add("")
        add("The stderr of each failed run is kept in build/bench/logs/.")
    add("")
    # The callgrind table (make bench-icount, which a full `make bench` runs
    # first) so that one file holds the whole picture; icount.md keeps its
    # method and its own date and commit.
    icount_path = os.path.join(os.path.dirname(args.markdown), "icount.md")
    try:
        with open(icount_path) as handle:
            icount = handle.read().splitlines()
    except OSError:
        icount = []
    if icount:
        add("## Instructions per operation (callgrind)")
        add("")
        written = " ".join(t.strip() for t in icount[2:4] if t.strip())
        add(f"From [icount.md](icount.md) (method there). {written}")
        add("")
        for text in icount:
            if text.startswith("|"):
                add(text)
        add("")
    with open(args.markdown, "w") as handle:
        handle.write("\n".join(lines))

    write_chart(args, workloads, allocators, median_time, baseline)


def write_chart(args, workloads, allocators, median_time, baseline):
    """A clustered bar chart, one group per workload, one bar per allocator:
    median time relative to the baseline's median, on a log axis."""
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        print("analyze: gnuplot not installed; no chart written")
        if os.path.exists(args.svg):
            os.remove(args.svg)
        return
    # gnuplot rejects a column with no valid point: chart only the allocators
    # with at least one successful workload.
    allocators = [a for a in allocators if any((w, a) in median_time for w in workloads)]
    if not allocators or not any((w, baseline) in median_time for w in workloads):
        print("analyze: no successful runs to chart")
        if os.path.exists(args.svg):
            os.remove(args.svg)  # never leave an earlier run's chart behind
        return
    data_path = os.path.join(args.work_dir, "chart.dat")
    script_path = os.path.join(args.work_dir, "chart.gp")
    with open(data_path, "w") as data:
        data.write("workload " + " ".join(allocators) + "\n")
        for workload in workloads:
            base = median_time.get((workload, baseline))
            values = []
            for allocator in allocators:
                mine = median_time.get((workload, allocator))
                values.append(f"{max(mine, 0.01) / max(base, 0.01):.4f}"
                              if mine is not None and base else "NaN")
            data.write(workload + " " + " ".join(values) + "\n")
    columns = len(allocators)
    ratios = [max(median_time[(w, a)], 0.01) / max(median_time[(w, baseline)], 0.01)
              for w in workloads for a in allocators
              if (w, a) in median_time and median_time.get((w, baseline))]
    # The bars start at the bottom of the log axis: put it a power of two
    # below the smallest ratio (and never above 1/8).
    low = min([r / 1.1 for r in ratios] + [0.125])
    y_min = 2.0 ** math.floor(math.log2(low) + 1e-9)
    # Horizontal tick labels (rotated SVG text renders differently across
    # viewers): give each workload group room for its name.
    width = max(900, (20 * max(columns, 5) + 40) * len(workloads) + 260)
    quick = " (QUICK run)" if args.quick == "1" else ""
    script = f"""
set terminal svg size {width},520 dynamic font "sans,11" background "white"
set output "{args.svg}"
set title "Median wall time relative to {baseline} (lower is better; log scale){quick}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y 2
set yrange [{y_min}:*]
set ylabel "time / {baseline} time"
set grid ytics
set key outside right top vertical
set xtics nomirror
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 linecolor rgb "black"
plot for [i=2:{columns + 1}] "{data_path}" using i:xtic(1) title columnheader(i)
"""
    with open(script_path, "w") as handle:
        handle.write(script)
    result = subprocess.run([gnuplot, script_path], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        print("analyze: gnuplot failed:\n" + result.stderr)


if __name__ == "__main__":
    main()
