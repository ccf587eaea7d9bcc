# Prints "SIDE RUN RATIO" for each round of one bench/tunnel.sh results file in which both
# ss-aes256gcm and 'peer' counted (setup_round_counts in stats.awk): peer's set-up p50 over
# ss-aes256gcm's. bench/tunnel_ab.sh feeds these lines to tunnel_ab_report.awk. Run as
#   awk -v side=A -v run=1 -v peer=NAME -f stats.awk -f round_ratios.awk RESULTS

{
    p = parse_result()
    if (kv["scenario"] != "setup" || !setup_round_counts())
        next
    if (p == "ss-aes256gcm")
        ss[kv["rep"]] = kv["setup_p50_ms"]
    if (p == peer)
        mine[kv["rep"]] = kv["setup_p50_ms"]
}

END {
    for (r in mine)
        if (r in ss)
            print side, run, mine[r] / ss[r]
}
