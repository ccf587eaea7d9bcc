# Summarises loadgen --phases files (one per peer or run): the quartiles of each phase of a
# connection's set-up, in µs. A file's lines are "connected method_reply socks_reply first_byte",
# each from connect() (0: the phase did not happen, as the method reply without SOCKS5).
#
#   awk -f bench/phases.awk ss.txt geoproxy.txt     (bench/tunnel.sh prints it for its set-up runs)
#
# Phases: connect (connect() to connected), method (to the SOCKS5 method reply), request (method
# reply to SOCKS5 reply), first byte (SOCKS5 reply to the first echoed byte), and the total.

function sift(a, start, end,    root, child, t) { # heap order below 'start', up to 'end'
    root = start
    while ((child = 2 * root) <= end) {
        if (child < end && a[child] < a[child + 1])
            child++
        if (a[root] >= a[child])
            return
        t = a[root]; a[root] = a[child]; a[child] = t
        root = child
    }
}

function quartiles(values, n,    sorted, i, t) {
    for (i = 1; i <= n; i++)
        sorted[i] = values[i] + 0
    for (i = int(n / 2); i >= 1; i--) # heapsort: runs of several thousand connections
        sift(sorted, i, n)
    for (i = n; i > 1; i--) {
        t = sorted[1]; sorted[1] = sorted[i]; sorted[i] = t
        sift(sorted, 1, i - 1)
    }
    return sprintf("%5d %5d %5d", sorted[int((n - 1) * 0.25) + 1], sorted[int((n - 1) * 0.5) + 1],
                   sorted[int((n - 1) * 0.75) + 1])
}

function report(name,    k) {
    if (n == 0)
        return
    printf "%-24s %-17s | %-17s | %-17s | %-17s | %s\n", name, quartiles(conn, n),
           quartiles(meth, n), quartiles(req, n), quartiles(first, n), quartiles(total, n)
    n = 0
    delete conn; delete meth; delete req; delete first; delete total
}

BEGIN {
    printf "%-24s %-17s | %-17s | %-17s | %-17s | %s\n", "µs: p25 p50 p75", "connect",
           "method", "request", "first byte", "total"
}
FNR == 1 && NR > 1 { report(previous) }
FNR == 1 { # a file's name, without its directory and .txt, names its row
    previous = FILENAME
    sub(/.*\//, "", previous)
    sub(/\.txt$/, "", previous)
}
/^#/ { next }
NF == 4 {
    n++
    conn[n] = $1
    meth[n] = $2 > 0 ? $2 - $1 : 0
    req[n] = $2 > 0 ? $3 - $2 : $3 - $1
    first[n] = $4 - $3
    total[n] = $4
}
END { report(previous) }
