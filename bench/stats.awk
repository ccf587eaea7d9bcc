# Functions shared by bench/report.awk and bench/tunnel_report.awk (awk -f stats.awk -f ...):
# medians and spreads over repetitions, formatting, ratios and verdicts, and the parsing of one
# raw result line ("peer=NAME rep=N RESULT key=value ..."). Portable awk (mawk): no asort.

# Sorts the values recorded under 'key' into a[1..count] (insertion sort: a few dozen values) and
# returns count.
function sort_values(key, a,    cnt, i, j, t) {
    cnt = n[key] + 0
    for (i = 1; i <= cnt; i++)
        a[i] = vals[key, i] + 0
    for (i = 2; i <= cnt; i++) {
        t = a[i]
        for (j = i - 1; j >= 1 && a[j] > t; j--)
            a[j + 1] = a[j]
        a[j + 1] = t
    }
    return cnt
}

function median(key,    cnt, a) {
    cnt = sort_values(key, a)
    if (cnt == 0)
        return ""
    if (cnt % 2 == 1)
        return a[(cnt + 1) / 2]
    return (a[cnt / 2] + a[cnt / 2 + 1]) / 2
}

# A 95 % confidence interval for the median of the values under 'key' that assumes nothing about
# their distribution (the sign test's): from the k-th smallest value to the k-th largest, for the
# largest k that leaves at most 2.5 % binomial probability (p = 1/2) outside on each side.
# Returns "LOW HIGH", or "" for fewer than 6 values, where no such k exists, and for more than
# 1,000 (0.5 ^ count underflows past 1,074; no benchmark here pools that many).
function median_interval(key,    cnt, a, k, i, p, cdf) {
    cnt = sort_values(key, a)
    if (cnt > 1000)
        return ""
    p = 0.5 ^ cnt # P(X = 0), X ~ Binomial(cnt, 1/2): how many values fall below the median
    cdf = p
    k = 0
    for (i = 0; i < cnt && cdf <= 0.025; ) {
        k = i + 1 # P(X <= k - 1) <= 2.5 %: the k-th values from each end bound the median
        i++
        p = p * (cnt - i + 1) / i
        cdf += p
    }
    if (k == 0)
        return ""
    return a[k] " " a[cnt - k + 1]
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

# Whether the set-up result parsed into kv may stand in a round's ratio: the run made every
# connection and measured something (a p50 of 0 is a run that measured nothing, not a fast one).
function setup_round_counts() {
    return kv["setup_p50_ms"] + 0 > 0 && kv["errors"] + 0 == 0 && !("crashed" in kv) &&
        !("failed" in kv)
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
