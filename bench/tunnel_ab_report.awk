# bench/tunnel_ab.sh's summary. Input lines "SIDE RUN RATIO", one per round: geoproxy's set-up
# p50 over ss-aes256gcm's in that round. Prints each run's median, then each side's median over
# all its rounds with its 95 % interval, and B over A. Run as
#   awk -f stats.awk -f tunnel_ab_report.awk
# Exits 1 when a side has no round.

{
    key = $1 " " $2
    if (!(key in seen_run))
        runs[++nruns] = key
    seen_run[key] = 1
    add("run" SUBSEP key, $3)
    add("side" SUBSEP $1, $3)
    if ($3 < 1)
        faster[$1]++
}

END {
    print ""
    print "| run | set-up p50 / ss-aes256gcm, median of the rounds | rounds |"
    print "|---|---:|---:|"
    for (k = 1; k <= nruns; k++)
        printf "| %s | %.3f | %d |\n", runs[k], median("run" SUBSEP runs[k]),
            n["run" SUBSEP runs[k]]
    print ""
    for (s = 0; s < 2; s++) {
        side = s ? "B" : "A"
        key = "side" SUBSEP side
        if (n[key] + 0 == 0) {
            printf "%s: no round where both peers made every connection\n", side
            failed = 1
            continue
        }
        m[side] = median(key)
        iv = median_interval(key)
        split(iv, lo_hi, " ")
        printf "%s: median of all %d rounds %.3f (95 %% interval %s; faster than ss-aes256gcm" \
            " in %d)\n", side, n[key], m[side],
            iv == "" ? "–" : sprintf("%.3f–%.3f", lo_hi[1], lo_hi[2]), faster[side] + 0
    }
    if (failed)
        exit 1
    printf "B / A: %.3f\n", m["B"] / m["A"]
}
