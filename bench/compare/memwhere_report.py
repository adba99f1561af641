#!/usr/bin/env python3
"""memwhere_report.py OUT ENGINE... — the tables of bench/compare/memwhere.sh from its raw snapshots in OUT."""
import os, sys
out, engines = sys.argv[1], sys.argv[2:]
def kv(path):
    d = {}
    try:
        for l in open(path):
            k, v = l.rstrip("\n").split("\t")
            d[k] = float(v)
    except OSError:
        pass
    return d
cnt = {e: int(open(os.path.join(out, f"{e}-count")).read()) for e in engines}
print(f"\nper idle container (after - before) / N; N = " + ", ".join(f"{e} {cnt[e]}" for e in engines))
print(f"{'':28}" + "".join(f"{e:>12}" for e in engines) + "   (removed - before) / N")
rows = ["MemAvailable", "MemAvailable_median", "MemFree", "AnonPages", "Shmem", "Slab", "SReclaimable", "SUnreclaim",
        "KernelStack", "PageTables", "Percpu", "VmallocUsed", "Cached", "Mapped", "Committed_AS",
        "daemon_rss_kb", "daemon_pss_kb", "helper_pss_kb", "idle_pss_kb", "helper_procs", "idle_procs",
        "all_procs", "all_threads", "nr_inodes", "nr_dentries", "nr_files", "host_mounts", "host_tmpfs_mounts", "host_overlay_mounts"]
b = {e: kv(os.path.join(out, f"{e}-before.tsv")) for e in engines}
a = {e: kv(os.path.join(out, f"{e}-after.tsv")) for e in engines}
r = {e: kv(os.path.join(out, f"{e}-removed.tsv")) for e in engines}
cg = sorted({k for e in engines for k in a[e] if k.startswith("memcg_")}) + \
    sorted({k for e in engines for k in a[e] if k.startswith("cgroup_dirs_")})
for k in rows + cg:
    vals = [(a[e].get(k, 0) - b[e].get(k, 0)) / max(cnt[e], 1) for e in engines]
    rem = [(r[e].get(k, 0) - b[e].get(k, 0)) / max(cnt[e], 1) for e in engines]
    unit = "" if not any(x in k for x in ("Mem", "Anon", "Shmem", "Slab", "SRecl", "SUnrecl", "Kernel", "PageT", "Percpu", "Vmalloc", "Cached", "Mapped", "Commit", "_kb")) else " kB"
    print(f"{k + unit:28}" + "".join(f"{v:12.2f}" for v in vals) + "   " + " ".join(f"{v:.2f}" for v in rem))
print("\nslab caches that grew most, kB per container:")
def slab(path):
    d = {}
    for l in open(path):
        k, v = l.split("\t")
        d[k] = float(v)
    return d
for e in engines:
    sb, sa = slab(os.path.join(out, f"{e}-before.slab")), slab(os.path.join(out, f"{e}-after.slab"))
    top = sorted(((sa.get(k, 0) - sb.get(k, 0)) / max(cnt[e], 1), k) for k in set(sa) | set(sb))[::-1][:14]
    print(f"  {e}: " + ", ".join(f"{k} {v:.1f}" for v, k in top if v > 0.05))
print("\none container's own view:")
cv = {e: kv(os.path.join(out, f"{e}-container.tsv")) for e in engines}
keys = sorted({k for e in engines for k in cv[e]})
for k in keys:
    print(f"  {k:26}" + "".join(f"{cv[e].get(k, 0):12.0f}" for e in engines))
