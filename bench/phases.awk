# Summarises loadgen --phases files (one per peer or run): the quartiles of each phase of a
# connection's set-up, in µs. A file's lines are "connected method_reply socks_reply first_byte",
# each from connect() (0: the phase did not happen, as the method reply without SOCKS5).
#
#   awk -f bench/phases.awk ss.txt geoproxy.txt
#
# Phases: connect (connect() to connected), method (to the SOCKS5 method reply), request (method
# reply to SOCKS5 reply), first byte (SOCKS5 reply to the first echoed byte), and the total.

function quartiles(values, n,    sorted, i, j, t) {
    for (i = 1; i <= n; i++)
        sorted[i] = values[i]
    for (i = 2; i <= n; i++) { # insertion sort: a run has a few thousand connections
        t = sorted[i]
        for (j = i - 1; j >= 1 && sorted[j] > t; j--)
            sorted[j + 1] = sorted[j]
        sorted[j + 1] = t
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
{ previous = FILENAME }
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
