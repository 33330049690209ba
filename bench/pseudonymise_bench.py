"""Pseudonymisation throughput: tfkit's vectorised HMAC vs a plain Python `hmac` loop, in one run.

    .venv/bin/python bench/pseudonymise_bench.py [--values 10000000] [--loop-values 1000000]

Cases (each in its own subprocess, wall time and peak RSS from os.wait4):
  kernel          MasterKey.pseudonym_expr on already-normalised values, polars streaming engine
  pseudonymise    tfkit.pseudonymise.pseudonymise() on a frame of raw person ids (normalise
                  "<la_code>:<id>" + hash), default path (every row hashed)
  pseudonymise_distinct   the same with hash_distinct=True (unique -> hash -> join back)
  repeated / repeated_distinct   4 rows per distinct value (family ids): direct vs hash_distinct
  nis_return      pseudonymise() of a validated generated NIS cohort of 200,000 people with the
                  default policy (5 hashed ids + 12 match keys = 17 HMACs per row); rows/s
  sha256_plain    polars-hash's plain SHA-256 of the same values (no HMAC): the kernel's overhead
  native_prototype   NOT tfkit: a 30-line C loop over the Arrow buffers: HMAC pads hashed once
                  (midstates), each value of <= 55 bytes padded in place and hashed with exactly two
                  calls of OpenSSL's SHA-NI block function (SHA256_Transform), hex written into one
                  preallocated buffer, 2 threads: what a purpose-built kernel would gain (skipped
                  without gcc and OpenSSL headers); checked against the contract first
  python_hmac     hmac.new(key, value, sha256).hexdigest() in a Python loop over --loop-values
                  values, extrapolated linearly to --values (it is a constant-cost loop)
Then the physical limit: SHA-256 compressions per second on this CPU (openssl speed -evp
sha256 on 16 KiB blocks, and hashlib on a 256 MiB buffer), and what HMAC with precomputed pads
(2 compressions per value of at most 55 bytes) would give on every core.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

PROJECT = "bench"

NATIVE_C = r"""
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>
static const char HEX[] = "0123456789abcdef";
static void be(const SHA256_CTX *c, unsigned char *d) {
    for (int i = 0; i < 8; i++) { uint32_t w = c->h[i]; d[4*i] = w >> 24; d[4*i+1] = w >> 16; d[4*i+2] = w >> 8; d[4*i+3] = w; }
}
/* HMAC-SHA256 hex of values [start, end) of an Arrow large_string array. The pads are hashed once
   (midstates); a value of at most 55 bytes is padded in place and costs exactly two compressions
   (SHA256_Transform: OpenSSL's SHA-NI block function, no Update/Final bookkeeping). */
void hmac_hex_batch(const unsigned char *key64, const unsigned char *data, const int64_t *offsets,
                    int64_t start, int64_t end, char *out) {
    unsigned char pad[64], blk[64], d[32];
    SHA256_CTX inner, outer, c;
    for (int i = 0; i < 64; i++) pad[i] = key64[i] ^ 0x36;
    SHA256_Init(&inner); SHA256_Update(&inner, pad, 64);
    for (int i = 0; i < 64; i++) pad[i] = key64[i] ^ 0x5c;
    SHA256_Init(&outer); SHA256_Update(&outer, pad, 64);
    for (int64_t r = start; r < end; r++) {
        size_t n = (size_t)(offsets[r + 1] - offsets[r]);
        if (n > 55) {
            c = inner; SHA256_Update(&c, data + offsets[r], n); SHA256_Final(d, &c);
            c = outer; SHA256_Update(&c, d, 32); SHA256_Final(d, &c);
        } else {
            uint64_t bits = (uint64_t)(64 + n) * 8;
            memset(blk, 0, 64); memcpy(blk, data + offsets[r], n); blk[n] = 0x80;
            for (int i = 0; i < 8; i++) blk[63 - i] = (unsigned char)(bits >> (8 * i));
            c = inner; SHA256_Transform(&c, blk);
            be(&c, blk); memset(blk + 32, 0, 32); blk[32] = 0x80; blk[62] = 0x03;  /* (64 + 32) * 8 bits */
            c = outer; SHA256_Transform(&c, blk);
            be(&c, d);
        }
        char *o = out + r * 64;
        for (int i = 0; i < 32; i++) { o[2 * i] = HEX[d[i] >> 4]; o[2 * i + 1] = HEX[d[i] & 15]; }
    }
}
"""


def native_hmac(values, key_text: str, threads: int = 2):
    """The prototype: HMAC-SHA256 hex of a non-null polars String Series, via the C loop above."""
    import ctypes
    import tempfile
    import threading

    import numpy as np
    import polars as pl
    import pyarrow as pa

    tmp = tempfile.mkdtemp()
    src, lib_path = os.path.join(tmp, "hm.c"), os.path.join(tmp, "hm.so")
    with open(src, "w") as fh:
        fh.write(NATIVE_C)
    subprocess.run(["gcc", "-O3", "-march=native", "-shared", "-fPIC", "-Wno-deprecated-declarations",
                    "-o", lib_path, src, "-lcrypto"], check=True, capture_output=True)
    lib = ctypes.CDLL(lib_path)
    lib.hmac_hex_batch.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                   ctypes.c_int64, ctypes.c_void_p]
    t0 = time.perf_counter()
    arr = values.to_arrow().cast(pa.large_string())
    _, offsets, data = arr.buffers()
    n = len(arr)
    out = np.empty(n * 64, dtype=np.uint8)
    step = (n + threads - 1) // threads
    t_hash = time.perf_counter()
    workers = [threading.Thread(target=lib.hmac_hex_batch, args=(
        key_text.encode("ascii"), data.address, offsets.address + 8 * arr.offset, i * step, min(n, (i + 1) * step),
        out.ctypes.data)) for i in range(threads)]  # ctypes releases the GIL: both cores work
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    hash_seconds = time.perf_counter() - t_hash
    hex_offsets = pa.py_buffer(np.arange(0, 64 * n + 1, 64, dtype=np.int64).tobytes())
    result = pl.Series(values.name, pa.LargeStringArray.from_buffers(n, hex_offsets, pa.py_buffer(out)))
    return result, time.perf_counter() - t0, hash_seconds


def make_values(n: int, repeat: int = 1):
    import polars as pl

    i = pl.int_range(0, n) // repeat
    return pl.select(person_id=pl.lit("P") + (i * 7919 % 100_000_000 + 10_000_000).cast(pl.String)
                     if repeat > 1 else pl.lit("P") + (i + 10_000_000).cast(pl.String))


def run_case(case: str, n: int, loop_n: int) -> dict:
    import polars as pl

    from tfkit.pseudonymise import MasterKey, pseudonymise
    from tfkit.pseudonymise.policy import parse_policy

    key = MasterKey(bytes(range(32)))
    policy = parse_policy({"columns": {"person_id": "hash"}}, name="bench")
    if case == "nis_return":
        import tempfile

        from tfkit.demo import write_demo
        from tfkit.io import read_table
        from tfkit.pseudonymise import load_policy
        from tfkit.schemas import load_schema, validate

        with tempfile.TemporaryDirectory() as tmp:
            valid = validate(read_table(write_demo(tmp, 200_000, seed=1)["cohort"]), load_schema("nis")).valid
        t0 = time.perf_counter()
        out = pseudonymise(valid, key=key, project=PROJECT, policy=load_policy("nis"))
        return {"case": case, "rows": out.height, "seconds": time.perf_counter() - t0}
    if case in ("repeated", "repeated_distinct"):
        frame = make_values(n, repeat=4)
    else:
        frame = make_values(loop_n if case == "python_hmac" else n)
    normalised = frame.select(("E09000031:" + pl.col("person_id")).alias("v"))
    t0 = time.perf_counter()
    if case == "kernel":
        out = normalised.lazy().select(key.pseudonym_expr(pl.col("v"), PROJECT, "person_id")).collect(engine="streaming")
    elif case == "sha256_plain":
        out = normalised.lazy().select(pl.col("v").chash.sha2_256()).collect(engine="streaming")
    elif case in ("pseudonymise", "repeated"):
        out = pseudonymise(frame, key=key, project=PROJECT, policy=policy, la_code="E09000031")
    elif case in ("pseudonymise_distinct", "repeated_distinct"):
        out = pseudonymise(frame, key=key, project=PROJECT, policy=policy, la_code="E09000031", hash_distinct=True)
    elif case == "native_prototype":
        values = normalised["v"]
        sample = pl.concat([values[:1000], pl.Series("v", ["x" * 55, "y" * 56, "z" * 70, "é" * 30, "a"])])
        check, _, _ = native_hmac(sample, key.hmac_key_text(PROJECT, "person_id"))
        want = pl.DataFrame({"v": sample}).select(key.pseudonym_expr(pl.col("v"), PROJECT, "person_id")).to_series()
        assert check.to_list() == want.to_list(), "prototype disagrees with the contract"
        out, seconds, hash_seconds = native_hmac(values, key.hmac_key_text(PROJECT, "person_id"))
        return {"case": case, "rows": out.len(), "seconds": seconds, "hash_seconds": hash_seconds}
    elif case == "python_hmac":
        import hashlib
        import hmac

        k = key.hmac_key_text(PROJECT, "person_id").encode("ascii")
        values = normalised["v"].to_list()
        t0 = time.perf_counter()
        out = [hmac.new(k, v.encode("utf-8"), hashlib.sha256).hexdigest() for v in values]
    else:
        raise SystemExit(f"unknown case {case}")
    seconds = time.perf_counter() - t0
    rows = len(out) if isinstance(out, list) else out.height
    return {"case": case, "rows": rows, "seconds": seconds}


def physical_limit() -> dict:
    import hashlib

    buf = b"\0" * (256 << 20)
    t0 = time.perf_counter()
    hashlib.sha256(buf).digest()
    hashlib_bps = len(buf) / (time.perf_counter() - t0)
    openssl_bps = None
    try:
        text = subprocess.run(["openssl", "speed", "-evp", "sha256", "-seconds", "3"], capture_output=True,
                              text=True, timeout=120).stdout
        line = next(l for l in text.splitlines() if l.startswith("sha256"))
        openssl_bps = float(re.findall(r"([\d.]+)k", line)[-1]) * 1000
    except (OSError, StopIteration, IndexError, subprocess.SubprocessError):
        pass
    best = max(hashlib_bps, openssl_bps or 0)
    per_core = best / 64
    cores = os.cpu_count() or 1
    return {"hashlib_bytes_per_s": hashlib_bps, "openssl_bytes_per_s": openssl_bps,
            "compressions_per_s_per_core": per_core, "cores": cores,
            "hmac_values_per_s_limit": per_core * cores / 2}


def child(case: str, n: int, loop_n: int) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, "--case", case, "--values", str(n), "--loop-values", str(loop_n)],
                            stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"case {case} failed")
    result = json.loads(out)
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--values", type=int, default=10_000_000)
    ap.add_argument("--loop-values", type=int, default=1_000_000)
    ap.add_argument("--case")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.values, args.loop_values)))
        return
    cases = ["kernel", "pseudonymise", "pseudonymise_distinct", "repeated", "repeated_distinct", "nis_return",
             "sha256_plain",
             "native_prototype", "python_hmac"]
    results = []
    for c in cases:
        try:
            results.append(child(c, args.values, args.loop_values))
        except SystemExit as err:
            if c != "native_prototype":
                raise
            print(f"(skipped native_prototype: {err})", file=sys.stderr)
    for r in results:
        r["values_per_s"] = r["rows"] / r["seconds"]
        r["extrapolated"] = r["rows"] != args.values and r["case"] != "nis_return"
        if r["extrapolated"]:
            r["seconds_for_all"] = args.values / r["values_per_s"]
    loop = next(r for r in results if r["case"] == "python_hmac")["values_per_s"]
    limit = physical_limit()
    if args.json:
        print(json.dumps({"values": args.values, "cases": results, "limit": limit}, indent=2))
        return
    print(f"{args.values:,} distinct identifier values (repeated cases: {args.values:,} rows, 4 per value); "
          f"{os.cpu_count()} cores")
    print(f"{'case':24s} {'rows':>11s} {'seconds':>8s} {'values/s':>12s} {'x loop':>7s} {'peak MiB':>9s}")
    for r in results:
        sec = r.get("seconds_for_all", r["seconds"])
        note = f"  (timed on {r['rows']:,}, extrapolated)" if r["extrapolated"] else ""
        if r["case"] == "nis_return":
            note = "  (rows/s, 17 HMACs per row; not comparable to the loop)"
        print(f"{r['case']:24s} {r['rows']:11,d} {sec:8.2f} {r['values_per_s']:12,.0f} "
              f"{r['values_per_s'] / loop:7.1f} {r['peak_rss_mib']:9.0f}{note}")
    kernel = next(r for r in results if r["case"] == "kernel")["values_per_s"]
    native = next((r for r in results if r["case"] == "native_prototype"), None)
    if native:
        print(f"native_prototype: {native['hash_seconds']:.2f} s of its {native['seconds']:.2f} s in the C loop "
              f"({native['rows'] / native['hash_seconds']:,.0f} values/s); the rest converts polars strings to "
              "Arrow large_string and back")
    print(f"\nSHA-256: {limit['compressions_per_s_per_core']:,.0f} 64-byte compressions/s per core "
          f"(hashlib {limit['hashlib_bytes_per_s'] / 1e6:,.0f} MB/s, openssl "
          f"{(limit['openssl_bytes_per_s'] or 0) / 1e6:,.0f} MB/s)")
    print(f"limit for HMAC with precomputed pads on {limit['cores']} cores: "
          f"{limit['hmac_values_per_s_limit']:,.0f} values/s; the kernel reaches "
          f"{kernel / limit['hmac_values_per_s_limit']:.0%} of it")


if __name__ == "__main__":
    main()
