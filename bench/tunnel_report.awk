# Turns bench/tunnel.sh's raw result lines into Markdown tables: medians over the rounds, the
# spread, then geoproxy's tunnel against each peer in the ratios issue 5 states its goals in
# (against ss-libev; trojan is shown for reference), and the set-up ratio round by round (the
# peers of a round ran one after another, so they met the same load: the median of these ratios
# moves less with the machine's load than the ratio of the medians). Run as
#   awk -v tunnel_status=STATUS -v peer_order=PEER,... -f stats.awk -f tunnel_report.awk RESULTS
# where peer_order is the peers in the order to print them.

{
    peer = parse_result()
    if ("failed" in kv) {
        failures[peer] = failures[peer] " " kv["failed"]
        next
    }
    if ("crashed" in kv)
        crashes[peer]++
    errs[peer] += kv["errors"]
    if (kv["scenario"] == "throughput") {
        k = peer SUBSEP kv["streams"]
        add("mbps" SUBSEP k, kv["mbytes_per_s"])
        add("cpugb" SUBSEP k, kv["cpu_s_per_gb"])
    } else if (kv["scenario"] == "setup") {
        # A p50 of 0 is a run that measured nothing, not a fast one. A round pairs peers only
        # when both made every connection: a ratio to a run with errors is not a ratio of speeds.
        if (kv["setup_p50_ms"] + 0 > 0)
            add("p50" SUBSEP peer, kv["setup_p50_ms"])
        if (setup_round_counts())
            round_p50[peer, kv["rep"]] = kv["setup_p50_ms"]
        if (kv["rep"] + 0 > last_round)
            last_round = kv["rep"] + 0
        add("p99" SUBSEP peer, kv["setup_p99_ms"])
        add("reply" SUBSEP peer, kv["reply_p50_ms"])
        add("cpuconn" SUBSEP peer, kv["cpu_ms_per_conn"])
    }
}

# A ratio as text: two decimals, or as many more (up to six) as it takes for the text not to
# read as 'goal' itself, since those decide which side of the goal it is on ("1.003", not
# "1.00"). A ratio equal to the goal stays "1.00".
function ratio_text(r, goal,    d) {
    for (d = 2; d < 6 && sprintf("%." d "f", r) == sprintf("%." d "f", goal) && r != goal; d++)
        ;
    return sprintf("%." d "f", r)
}

# One cell of the ratio table: "1.12 (met)", or the bare ratio when there is no goal.
function cell(a, b, goal, higher_is_better,    r) {
    r = ratio(a, b)
    if (r == "")
        return "–"
    if (goal == "")
        return sprintf("%.2f", r)
    return ratio_text(r, goal) " (" verdict(r, goal, higher_is_better) ")"
}

# What a 95 % interval ("LOW HIGH") of a ratio says about geoproxy against the peer.
function interval_reading(iv,    lo_hi) {
    if (iv == "")
        return "too few rounds to tell"
    split(iv, lo_hi, " ")
    if (lo_hi[2] + 0 < 1)
        return "faster"
    if (lo_hi[1] + 0 > 1)
        return "slower"
    return "level: no difference these rounds can show"
}

# The set-up p50 of geoproxy's tunnels over each ss-libev peer's in the same round: the median
# of those ratios with its 95 % interval (how far this machine's noise leaves the median
# uncertain), and in how many rounds geoproxy was faster.
function print_round_ratios(    j, i, g, b, r, key, below, header, iv, lo_hi) {
    for (j = 1; j <= 2; j++) {
        g = mine[j]
        for (i = 1; i <= 2; i++) {
            b = against[i]
            key = "rr" SUBSEP g SUBSEP b
            below = 0
            for (r = 1; r <= last_round; r++) {
                if (!((g, r) in round_p50) || !((b, r) in round_p50) || round_p50[b, r] + 0 == 0)
                    continue
                add(key, round_p50[g, r] / round_p50[b, r])
                if (round_p50[g, r] + 0 < round_p50[b, r] + 0)
                    below++
            }
            if (n[key] + 0 == 0)
                continue
            if (!header) {
                print ""
                print "Set-up p50 round by round (a round's peers ran one after the other):"
                print ""
                print "| geoproxy / peer | median of the rounds' ratios | 95 % interval of the median | rounds geoproxy was faster | the rounds show |"
                print "|---|---:|---:|---:|---|"
                header = 1
            }
            iv = median_interval(key)
            split(iv, lo_hi, " ")
            printf "| %s / %s | %s | %s | %d of %d | %s |\n", g, b, cell(median(key), 1, 1.0, 0),
                iv == "" ? "–" : ratio_text(lo_hi[1], 1) "–" ratio_text(lo_hi[2], 1), below,
                n[key], interval_reading(iv)
        }
    }
}

END {
    nprint = split(peer_order, printing, ",")
    print "| peer | MB/s, 1 stream | MB/s, 8 streams | CPU-s/GB, 1 / 8 streams | set-up p50 / p99 ms | SOCKS5 reply p50 ms | CPU ms/conn | errors |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|"
    for (p = 1; p <= nprint; p++) {
        peer = printing[p]
        if (!(peer in seen))
            continue
        m1 = median("mbps" SUBSEP peer SUBSEP 1)
        m8 = median("mbps" SUBSEP peer SUBSEP 8)
        c1 = median("cpugb" SUBSEP peer SUBSEP 1)
        c8 = median("cpugb" SUBSEP peer SUBSEP 8)
        p50 = median("p50" SUBSEP peer)
        p99 = median("p99" SUBSEP peer)
        rep50 = median("reply" SUBSEP peer)
        cpc = median("cpuconn" SUBSEP peer)
        cpu = (c1 == "" && c8 == "") ? "–" : fmt(c1, "%.2f") " / " fmt(c8, "%.2f")
        lat = (p50 == "") ? "–" : fmt(p50, "%.3f") " / " fmt(p99, "%.3f")
        note = errs[peer] + 0
        if (peer in crashes)
            note = note ", crashed x" crashes[peer]
        if (peer in failures)
            note = note ", failed:" failures[peer]
        printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", peer, fmt(m1, "%.0f"),
            fmt(m8, "%.0f"), cpu, lat, fmt(rep50, "%.3f"), fmt(cpc, "%.3f"), note
        M1[peer] = m1; M8[peer] = m8; C1[peer] = c1; C8[peer] = c8; P50[peer] = p50
    }
    if (!("geoproxy-tunnel" in seen) && tunnel_status != "not selected")
        printf "| geoproxy-tunnel | %s | | | | | | |\n", tunnel_status == "" ? "not run" : tunnel_status

    print ""
    print "Spread over the rounds (min–max); the table above shows medians:"
    print ""
    print "| peer | MB/s, 1 stream | MB/s, 8 streams | set-up p50 ms | rounds |"
    print "|---|---:|---:|---:|---:|"
    for (p = 1; p <= nprint; p++) {
        peer = printing[p]
        rounds = n["mbps" SUBSEP peer SUBSEP 1] + 0
        if (n["p50" SUBSEP peer] + 0 > rounds)
            rounds = n["p50" SUBSEP peer] + 0
        if (rounds == 0)
            continue
        printf "| %s | %s | %s | %s | %d |\n", peer, spread("mbps" SUBSEP peer SUBSEP 1, "%.0f"),
            spread("mbps" SUBSEP peer SUBSEP 8, "%.0f"), spread("p50" SUBSEP peer, "%.3f"), rounds
    }

    print ""
    print "geoproxy's tunnel against each peer (issue 5's goals are against ss-libev):"
    print ""
    print "| geoproxy / peer | MB/s, 1 stream | MB/s, 8 streams | set-up p50 | CPU-s/GB, 1 stream | CPU-s/GB, 8 streams |"
    print "|---|---:|---:|---:|---:|---:|"
    print "| goal | ≥ 1.0 | ≥ 1.0 | ≤ 1.0 | ≤ 1.0 | ≤ 1.0 |"
    ours = 0
    split("geoproxy-tunnel geoproxy-optimistic", mine, " ")
    split("ss-aes256gcm ss-chacha20 trojan", against, " ")
    for (j = 1; j <= 2; j++) {
        g = mine[j]
        if (!(g in seen))
            continue
        ours++
        for (i = 1; i <= 3; i++) {
            b = against[i]
            if (!(b in seen))
                continue
            goal = (b == "trojan") ? "" : 1.0
            printf "| %s / %s%s | %s | %s | %s | %s | %s |\n", g, b,
                goal == "" ? " (reference)" : "",
                cell(M1[g], M1[b], goal, 1), cell(M8[g], M8[b], goal, 1),
                cell(P50[g], P50[b], goal, 0), cell(C1[g], C1[b], goal, 0),
                cell(C8[g], C8[b], goal, 0)
        }
    }
    if (ours == 0)
        printf "| (not measured: %s) | – | – | – | – | – |\n", tunnel_status == "" ? "not run" : tunnel_status
    print_round_ratios()
    g = "geoproxy-tunnel"

    if (!("direct" in seen) && !((g in seen) && ("geoproxy-1hop" in seen)))
        exit
    print ""
    print "For reference: each peer against the direct run, and geoproxy's tunnel against its single hop:"
    print ""
    print "| ratio | MB/s, 1 / 8 streams | set-up p50 |"
    print "|---|---:|---:|"
    for (p = 1; p <= nprint; p++) {
        peer = printing[p]
        if (peer == "direct" || !(peer in seen) || !("direct" in seen))
            continue
        printf "| %s / direct | %s / %s | %s |\n", peer, cell(M1[peer], M1["direct"], "", 1),
            cell(M8[peer], M8["direct"], "", 1), cell(P50[peer], P50["direct"], "", 0)
    }
    if ((g in seen) && ("geoproxy-1hop" in seen))
        printf "| geoproxy-tunnel / geoproxy-1hop | %s / %s | %s |\n",
            cell(M1[g], M1["geoproxy-1hop"], "", 1), cell(M8[g], M8["geoproxy-1hop"], "", 1),
            cell(P50[g], P50["geoproxy-1hop"], "", 0)
}
