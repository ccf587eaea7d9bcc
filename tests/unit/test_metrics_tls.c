/* Why a TLS handshake failed, as geoproxy_tls_failures_total counts it: the verification result
 * decides first, then whether the peer answered a certificate request with none; and the
 * per-worker counters add up. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/x509_vfy.h>
#include <stdlib.h>

#include "proxy/metrics.h"

static void test_failure_of(void **state)
{
    (void)state;
    static const struct {
        long verify;
        bool sent;
        enum metrics_tls_failure want;
    } cases[] = {
        {X509_V_OK, false, METRICS_TLS_NO_CERTIFICATE},
        {X509_V_OK, true, METRICS_TLS_HANDSHAKE},
        {X509_V_ERR_CERT_HAS_EXPIRED, true, METRICS_TLS_EXPIRED},
        {X509_V_ERR_CERT_HAS_EXPIRED, false, METRICS_TLS_EXPIRED},
        {X509_V_ERR_CERT_NOT_YET_VALID, true, METRICS_TLS_NOT_YET_VALID},
        {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, true, METRICS_TLS_UNKNOWN_CA},
        {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, true, METRICS_TLS_UNKNOWN_CA},
        {X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, true, METRICS_TLS_UNKNOWN_CA},
        {X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, true, METRICS_TLS_UNKNOWN_CA},
        {X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, true, METRICS_TLS_UNKNOWN_CA},
        {X509_V_ERR_CERT_SIGNATURE_FAILURE, true, METRICS_TLS_UNKNOWN_CA},
        {X509_V_ERR_CERT_UNTRUSTED, true, METRICS_TLS_UNKNOWN_CA},
        {X509_V_ERR_HOSTNAME_MISMATCH, true, METRICS_TLS_HANDSHAKE},
        {X509_V_ERR_CERT_REVOKED, true, METRICS_TLS_HANDSHAKE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        print_message("case %zu: verify %ld, sent %d\n", i, cases[i].verify, cases[i].sent);
        assert_int_equal(metrics_tls_failure_of(cases[i].verify, cases[i].sent), cases[i].want);
    }
}

static void test_count(void **state)
{
    (void)state;
    struct worker_metrics *m = calloc(1, sizeof *m);
    assert_non_null(m);
    metrics_count_tls_failure(m, METRICS_TLS_PIN_MISMATCH);
    metrics_count_tls_failure(m, METRICS_TLS_PIN_MISMATCH);
    metrics_count_tls_failure(m, (enum metrics_tls_failure)99); /* out of range: handshake */
    assert_int_equal(atomic_load(&m->tls_failures[METRICS_TLS_PIN_MISMATCH].v), 2);
    assert_int_equal(atomic_load(&m->tls_failures[METRICS_TLS_HANDSHAKE].v), 1);
    assert_int_equal(atomic_load(&m->tls_failures[METRICS_TLS_EXPIRED].v), 0);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failure_of),
        cmocka_unit_test(test_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
