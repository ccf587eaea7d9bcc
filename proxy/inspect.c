#include "proxy/inspect.h"

#include <stdlib.h>
#include <string.h>

#include "proxy/conn.h"
#include "proxy/conn_log.h"
#include "proxy/log.h"
#include "proxy/worker.h"

struct inspection *inspection_new(enum inspect_kind kind, struct policy_snapshot *candidate,
                                  size_t n_workers, uv_async_t *done)
{
    struct inspection *q = calloc(1, sizeof *q);
    if (q != NULL) {
        q->answers = calloc(n_workers + 1, sizeof *q->answers);
        q->counts = calloc(n_workers + 1, sizeof *q->counts);
    }
    if (q == NULL || q->answers == NULL || q->counts == NULL) {
        if (q != NULL) {
            free(q->answers);
            free(q->counts);
        }
        free(q);
        policy_snapshot_release(candidate);
        return NULL;
    }
    q->kind = kind;
    q->candidate = candidate;
    q->n_answers = n_workers;
    for (size_t i = 0; i < n_workers; i++)
        strbuf_init(&q->answers[i], INSPECT_ANSWER_MAX);
    atomic_init(&q->pending, n_workers);
    q->done = done;
    return q;
}

void inspection_free(struct inspection *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->n_answers; i++)
        strbuf_free(&q->answers[i]);
    free(q->answers);
    free(q->counts);
    policy_snapshot_release(q->candidate);
    free(q);
}

/* Appends one connection's description; for a dry run only when its verdict would change. */
static void inspection_describe(struct inspection *q, struct strbuf *sb, const struct conn *c)
{
    char line[LOG_LINE_MAX];
    struct policy_verdict v;
    const struct policy_verdict *candidate = NULL;

    if (q->kind == INSPECT_DRY_RUN) {
        if (!conn_decide_again(c, q->candidate, &v))
            return;
        if (v.action == c->verdict.action && c->verdict.rule != NULL &&
            strcmp(v.rule, c->verdict.rule) == 0)
            return;
        candidate = &v;
    }
    size_t len = conn_log_describe(c, candidate, line, sizeof line);
    if (len < 2)
        return;
    if (sb->len > 0)
        strbuf_append(sb, ",", 1);
    strbuf_append(sb, line, len - 1); /* without its newline */
}

void inspection_answer(struct inspection *q, size_t index, struct worker *w)
{
    struct strbuf *sb = &q->answers[index];
    for (const struct conn *c = w->conns; c != NULL; c = c->next) {
        inspection_describe(q, sb, c);
        q->counts[index]++;
    }
    if (atomic_fetch_sub(&q->pending, 1) == 1)
        uv_async_send(q->done);
}

bool inspection_is_complete(struct inspection *q)
{
    return atomic_load(&q->pending) == 0;
}
