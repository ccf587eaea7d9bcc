/* Questions the admin loop asks every worker about its live connections: list them, or tell
 * which a candidate policy would decide differently (a dry run before installing it). Each
 * worker answers on its own thread into its own slot, then wakes the asker, which reads the
 * answers once every worker has given one. One question at a time. */
#ifndef GEOPROXY_PROXY_INSPECT_H
#define GEOPROXY_PROXY_INSPECT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "policy/policy.h"
#include "proxy/strbuf.h"

#define INSPECT_ANSWER_MAX (8u * 1024u * 1024u) /* bytes of JSON per worker */

enum inspect_kind {
    INSPECT_LIST,    /* every live connection */
    INSPECT_DRY_RUN, /* connected ones whose action or rule the candidate would change */
};

struct inspection {
    enum inspect_kind kind;
    struct policy_snapshot *candidate; /* INSPECT_DRY_RUN: owned reference */
    size_t n_answers;
    struct strbuf *answers; /* one per worker: JSON objects separated by commas */
    size_t *counts;         /* how many connections each worker looked at */
    atomic_size_t pending;  /* workers that have not answered yet */
    uv_async_t *done;       /* sent by the last worker to answer */
};

/* A new question for n workers; takes the candidate reference (may be NULL). NULL on OOM. */
struct inspection *inspection_new(enum inspect_kind kind, struct policy_snapshot *candidate,
                                  size_t n_workers, uv_async_t *done);
void inspection_free(struct inspection *q);

struct worker;

/* Answers for worker w (on w's thread): fills answers[index] and counts[index]. */
void inspection_answer(struct inspection *q, size_t index, struct worker *w);

/* True once every worker has answered. */
bool inspection_is_complete(struct inspection *q);

#endif
