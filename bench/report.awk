# Turns bench/run.sh's raw result lines ("peer=NAME rep=N RESULT key=value ...") into the
# Markdown tables of docs/BENCHMARKS.md: medians over the repetitions, then the ratios that the
# targets are stated in. Run as awk -f stats.awk -f report.awk.

{
    peer = parse_result()
    if ("failed" in kv) {
        failures[peer] = failures[peer] " " kv["failed"]
        next
    }
    if ("crashed" in kv)
        crashes[peer]++
    errs[peer] += kv["errors"]
    s = kv["scenario"]
    if (s == "throughput") {
        k = peer SUBSEP kv["streams"]
        add("mbps" SUBSEP k, kv["mbytes_per_s"])
        add("cpugb" SUBSEP k, kv["cpu_s_per_gb"])
    } else if (s == "connrate") {
        add("cps" SUBSEP peer, kv["conn_per_s"])
        add("p50" SUBSEP peer, kv["p50_ms"])
        add("p99" SUBSEP peer, kv["p99_ms"])
        add("cpuconn" SUBSEP peer, kv["cpu_ms_per_conn"])
    } else if (s == "idle") {
        add("kib" SUBSEP peer, kv["kib_per_conn"])
        add("pss" SUBSEP peer, kv["pss_kib_per_conn"])
        held[peer] = kv["held"] "/" kv["conns"]
        rss_after[peer] = kv["rss_after_kib"]
        rss_before[peer] = kv["rss_before_kib"]
    }
}

END {
    print "| peer | MB/s, 1 stream | MB/s, 8 streams | CPU-s/GB, 1 / 8 streams | conn/s (50 clients) | p50 / p99 ms | CPU ms/conn | KiB RSS per idle conn (PSS) | idle held | errors |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (p = 1; p <= npeers; p++) {
        peer = order[p]
        m1 = median("mbps" SUBSEP peer SUBSEP 1)
        m8 = median("mbps" SUBSEP peer SUBSEP 8)
        c1 = median("cpugb" SUBSEP peer SUBSEP 1)
        c8 = median("cpugb" SUBSEP peer SUBSEP 8)
        cps = median("cps" SUBSEP peer)
        p50 = median("p50" SUBSEP peer)
        p99 = median("p99" SUBSEP peer)
        cpc = median("cpuconn" SUBSEP peer)
        kib = median("kib" SUBSEP peer)
        pss = median("pss" SUBSEP peer)
        cpu = (c1 == "" && c8 == "") ? "–" : fmt(c1, "%.2f") " / " fmt(c8, "%.2f")
        lat = (p50 == "") ? "–" : fmt(p50, "%.2f") " / " fmt(p99, "%.2f")
        mem = (kib == "") ? "–" : fmt(kib, "%.1f") " (" fmt(pss, "%.1f") ")"
        note = errs[peer] + 0
        if (peer in crashes)
            note = note ", crashed x" crashes[peer]
        if (peer in failures)
            note = note ", failed:" failures[peer]
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", peer, fmt(m1, "%.0f"),
            fmt(m8, "%.0f"), cpu, fmt(cps, "%.0f"), lat, fmt(cpc, "%.3f"), mem,
            (peer in held) ? held[peer] : "–", note
        M1[peer] = m1; M8[peer] = m8; C1[peer] = c1; C8[peer] = c8; CPS[peer] = cps; KIB[peer] = kib
    }
    print ""
    print "Spread over the rounds (min–max); the table above shows medians:"
    print ""
    print "| peer | MB/s, 1 stream | MB/s, 8 streams | conn/s | rounds |"
    print "|---|---:|---:|---:|---:|"
    for (p = 1; p <= npeers; p++) {
        peer = order[p]
        rounds = n["mbps" SUBSEP peer SUBSEP 1] + 0
        if (n["cps" SUBSEP peer] + 0 > rounds)
            rounds = n["cps" SUBSEP peer] + 0
        if (rounds == 0)
            continue
        printf "| %s | %s | %s | %s | %d |\n", peer, spread("mbps" SUBSEP peer SUBSEP 1, "%.0f"),
            spread("mbps" SUBSEP peer SUBSEP 8, "%.0f"), spread("cps" SUBSEP peer, "%.0f"), rounds
    }
    print ""
    print "| ratio | value | goal | verdict |"
    print "|---|---:|---:|---|"
    if (!("geoproxy" in M1)) {
        printf "| geoproxy | – | – | %s |\n", geoproxy_status == "" ? "not run" : geoproxy_status
    } else {
        r = ratio(M1["geoproxy"], M1["haproxy"])
        printf "| throughput geoproxy / haproxy, 1 stream | %s | ≥ 1.0 | %s |\n", fmt(r, "%.2f"), verdict(r, 1.0, 1)
        r = ratio(M8["geoproxy"], M8["haproxy"])
        printf "| throughput geoproxy / haproxy, 8 streams | %s | ≥ 1.0 | %s |\n", fmt(r, "%.2f"), verdict(r, 1.0, 1)
        r = ratio(CPS["geoproxy"], CPS["dante"])
        printf "| conn/s geoproxy / dante (SOCKS5) | %s | ≥ 2.0 | %s |\n", fmt(r, "%.2f"), verdict(r, 2.0, 1)
        r = ratio(C1["geoproxy"], C1["haproxy"])
        printf "| CPU-s/GB geoproxy / haproxy, 1 stream | %s | ≤ 1.0 | %s |\n", fmt(r, "%.2f"), verdict(r, 1.0, 0)
        r = ratio(C8["geoproxy"], C8["haproxy"])
        printf "| CPU-s/GB geoproxy / haproxy, 8 streams | %s | ≤ 1.0 | %s |\n", fmt(r, "%.2f"), verdict(r, 1.0, 0)
        r = KIB["geoproxy"]
        printf "| KiB RSS per idle connection, geoproxy | %s | ≤ 8 | %s |\n", fmt(r, "%.1f"), verdict(r, 8, 0)
    }
    for (p = 1; p <= npeers; p++) {
        peer = order[p]
        if (peer == "direct")
            continue
        r1 = ratio(M1[peer], M1["direct"])
        r8 = ratio(M8[peer], M8["direct"])
        rc = ratio(CPS[peer], CPS["direct"])
        if (r1 != "" || rc != "")
            printf "| %s / direct: throughput 1 / 8 streams, conn/s | %s / %s, %s | (reference) | |\n",
                peer, fmt(r1, "%.2f"), fmt(r8, "%.2f"), fmt(rc, "%.2f")
    }
}
