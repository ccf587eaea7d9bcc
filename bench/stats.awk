# Functions shared by bench/report.awk and bench/tunnel_report.awk (awk -f stats.awk -f ...):
# medians and spreads over repetitions, formatting, ratios and verdicts, and the parsing of one
# raw result line ("peer=NAME rep=N RESULT key=value ..."). Portable awk (mawk): no asort.

function median(key,    cnt, i, j, t, a) {
    cnt = n[key] + 0
    if (cnt == 0)
        return ""
    for (i = 1; i <= cnt; i++)
        a[i] = vals[key, i] + 0
    for (i = 2; i <= cnt; i++) {
        t = a[i]
        for (j = i - 1; j >= 1 && a[j] > t; j--)
            a[j + 1] = a[j]
        a[j + 1] = t
    }
    if (cnt % 2 == 1)
        return a[(cnt + 1) / 2]
    return (a[cnt / 2] + a[cnt / 2 + 1]) / 2
}

function extreme(key, want_max,    i, v, best) {
    best = ""
    for (i = 1; i <= n[key]; i++) {
        v = vals[key, i] + 0
        if (best == "" || (want_max ? v > best : v < best))
            best = v
    }
    return best
}

function spread(key, f) {
    if (n[key] + 0 == 0)
        return "–"
    if (n[key] == 1)
        return sprintf(f, vals[key, 1])
    return sprintf(f "–" f, extreme(key, 0), extreme(key, 1))
}

function add(key, v) {
    if (v == "")
        return
    n[key]++
    vals[key, n[key]] = v
}

function fmt(v, f) {
    return v == "" ? "–" : sprintf(f, v)
}

function ratio(a, b) {
    return (a == "" || b == "" || b + 0 == 0) ? "" : a / b
}

function verdict(v, goal, higher_is_better) {
    if (v == "")
        return "not measured"
    if (higher_is_better)
        return v >= goal ? "met" : "**missed**"
    return v <= goal ? "met" : "**missed**"
}

# Parses the current line into kv[key] = value; records the peer's first appearance in
# order[1..npeers]. Returns the peer's name.
function parse_result(    i, eq, peer) {
    delete kv
    for (i = 1; i <= NF; i++) {
        eq = index($i, "=")
        if (eq > 0)
            kv[substr($i, 1, eq - 1)] = substr($i, eq + 1)
    }
    peer = kv["peer"]
    if (!(peer in seen)) {
        seen[peer] = 1
        order[++npeers] = peer
    }
    return peer
}
