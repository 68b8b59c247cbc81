/*
 * test_collector_zsec.c - CURVE key files and the ZAP handler (collector/zsec.h).
 *
 * Key loading refuses, naming the file and the config key: bad Z85, wrong
 * length, a secret key readable by others, a public key of another pair,
 * an empty allow-list. Then, in-process over loopback tcp, the handler
 * admits only allowed CURVE keys, NULL and PLAIN never pass, and with no
 * handler even an allowed key is refused (fail closed). No secret key ever
 * appears in the log.
 */
#define _GNU_SOURCE
#include "zsec.h"

#include <needlewatch/log.h>

#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cmocka.h>

struct fx {
    char dir[64];
    char srv_pub[41], srv_sec[41], cli_pub[41], cli_sec[41], other_pub[41], other_sec[41];
};

__attribute__((format(printf, 4, 5))) static void put_file(const struct fx *f, const char *name,
                                                           mode_t mode, const char *fmt, ...)
{
    char path[256], text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static const char *path_of(const struct fx *f, const char *name)
{
    static char path[4][256];
    static int i;
    i = (i + 1) % 4;
    snprintf(path[i], sizeof(path[i]), "%s/%s", f->dir, name);
    return path[i];
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/nw-zsec.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(zmq_curve_keypair(f->srv_pub, f->srv_sec), 0);
    assert_int_equal(zmq_curve_keypair(f->cli_pub, f->cli_sec), 0);
    assert_int_equal(zmq_curve_keypair(f->other_pub, f->other_sec), 0);
    put_file(f, "srv.key", 0600, "# a comment\n%s\n", f->srv_sec);
    put_file(f, "srv.pub", 0644, "%s\n", f->srv_pub);
    put_file(f, "cli.key", 0600, "%s", f->cli_sec);
    put_file(f, "cli.pub", 0644, "%s\n", f->cli_pub);
    char peers[256];
    snprintf(peers, sizeof(peers), "%s/peers", f->dir);
    mkdir(peers, 0755);
    put_file(f, "peers/cli.pub", 0644, "# the client\n%s\n", f->cli_pub);
    put_file(f, "peers/README", 0644, "not a key, ignored: only NAME.pub counts\n");
    put_file(f, "servers", 0644, "%s\n", f->srv_pub);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* zsec_new with the server's files and the given overrides; the error. */
static enum nw_err load(const struct fx *f, const char *secret, const char *public,
                        const char *peers, const char *servers, struct nw_error *err)
{
    struct zsec_options o = {.secret_file = path_of(f, secret ? secret : "srv.key"),
                             .public_file = path_of(f, public ? public : "srv.pub"),
                             .peers = path_of(f, peers ? peers : "peers"),
                             .server_key_file = servers ? path_of(f, servers) : NULL};
    struct zsec *z = NULL;
    *err = (struct nw_error){0};
    enum nw_err e = zsec_new(&o, &z, err);
    assert_true((e == NW_OK) == (z != NULL));
    zsec_destroy(&z);
    assert_null(z);
    return e;
}

static void test_good_keys(void **state)
{
    struct fx *f = *state;
    struct nw_error err;
    assert_int_equal(load(f, NULL, NULL, NULL, "servers", &err), NW_OK);
    struct zsec_options o = {.secret_file = path_of(f, "srv.key"),
                             .public_file = path_of(f, "srv.pub"),
                             .peers = path_of(f, "peers")};
    struct zsec *z = NULL;
    assert_int_equal(zsec_new(&o, &z, &err), NW_OK);
    assert_int_equal(zsec_peer_count(z), 1);
    zsec_destroy(&z);
    zsec_destroy(&z); /* NULL-safe */
    /* an allow-list file: KEY [NAME] lines, comments */
    put_file(f, "allow", 0644, "# peers\n%s in0\n\n  %s\n", f->cli_pub, f->other_pub);
    o.peers = path_of(f, "allow");
    assert_int_equal(zsec_new(&o, &z, &err), NW_OK);
    assert_int_equal(zsec_peer_count(z), 2);
    zsec_destroy(&z);
}

static void test_bad_z85(void **state)
{
    struct fx *f = *state;
    struct nw_error err;
    char bad[41];
    memcpy(bad, f->srv_pub, sizeof(bad));
    bad[7] = '~'; /* not in the Z85 alphabet */
    put_file(f, "bad.pub", 0644, "%s\n", bad);
    assert_int_equal(load(f, NULL, "bad.pub", NULL, NULL, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "Z85"));
    assert_non_null(strstr(err.msg, "bad.pub:1"));
    bad[7] = '"';
    put_file(f, "servers-bad", 0644, "tcp://127.0.0.1:1 %s\n", bad);
    assert_int_equal(load(f, NULL, NULL, NULL, "servers-bad", &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "servers-bad:1"));
}

static void test_wrong_length(void **state)
{
    struct fx *f = *state;
    struct nw_error err;
    put_file(f, "short.pub", 0644, "%.39s\n", f->srv_pub);
    assert_int_equal(load(f, NULL, "short.pub", NULL, NULL, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "40 Z85 characters, this one has 39"));
    put_file(f, "long.key", 0600, "%s0\n", f->srv_sec);
    assert_int_equal(load(f, "long.key", NULL, NULL, NULL, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "has 41"));
    assert_null(strstr(err.msg, f->srv_sec)); /* never the secret itself */
    put_file(f, "peers/short.pub", 0644, "%.20s\n", f->other_pub);
    assert_int_equal(load(f, NULL, NULL, NULL, NULL, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "peers/short.pub:1"));
    unlink(path_of(f, "peers/short.pub"));
    put_file(f, "two.pub", 0644, "%s\n%s\n", f->srv_pub, f->srv_pub);
    assert_int_equal(load(f, NULL, "two.pub", NULL, NULL, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "more than one key"));
    put_file(f, "empty.pub", 0644, "# nothing\n\n");
    assert_int_equal(load(f, NULL, "empty.pub", NULL, NULL, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "no key"));
}

static void test_secret_mode(void **state)
{
    struct fx *f = *state;
    struct nw_error err;
    put_file(f, "open.key", 0644, "%s\n", f->srv_sec);
    assert_int_equal(load(f, "open.key", NULL, NULL, NULL, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "collector.curve_secret_file"));
    assert_non_null(strstr(err.msg, "mode 0644"));
    assert_non_null(strstr(err.msg, "chmod 600"));
    put_file(f, "group.key", 0640, "%s\n", f->srv_sec);
    assert_int_equal(load(f, "group.key", NULL, NULL, NULL, &err), NW_ERR_CONFIG);
    put_file(f, "owner.key", 0400, "%s\n", f->srv_sec);
    assert_int_equal(load(f, "owner.key", NULL, NULL, NULL, &err), NW_OK);
    /* a public key may be world-readable */
    assert_int_equal(load(f, NULL, "srv.pub", NULL, NULL, &err), NW_OK);
}

static void test_mismatch_and_missing(void **state)
{
    struct fx *f = *state;
    struct nw_error err;
    assert_int_equal(load(f, NULL, "cli.pub", NULL, NULL, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "is not the public key of"));
    assert_int_equal(load(f, "nope.key", NULL, NULL, NULL, &err), NW_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "collector.curve_secret_file"));
    assert_int_equal(load(f, NULL, NULL, "nope-peers", NULL, &err), NW_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "collector.curve_peers"));
    char empty[256];
    snprintf(empty, sizeof(empty), "%s/nobody", f->dir);
    mkdir(empty, 0755);
    assert_int_equal(load(f, NULL, NULL, "nobody", NULL, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "no peer keys"));
    struct zsec_options o = {.public_file = path_of(f, "srv.pub")};
    struct zsec *z = NULL;
    assert_int_equal(zsec_new(&o, &z, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "collector.curve_secret_file"));
    put_file(f, "dup-servers", 0644, "%s\n%s\n", f->srv_pub, f->cli_pub);
    assert_int_equal(load(f, NULL, NULL, NULL, "dup-servers", &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "a second key"));
}

static void test_server_keys_by_endpoint(void **state)
{
    struct fx *f = *state;
    put_file(f, "map", 0644, "tcp://127.0.0.1:5601 %s\n", f->srv_pub);
    struct zsec_options o = {.secret_file = path_of(f, "cli.key"),
                             .public_file = path_of(f, "cli.pub"),
                             .server_key_file = path_of(f, "map")};
    struct zsec *z = NULL;
    struct nw_error err = {0};
    assert_int_equal(zsec_new(&o, &z, &err), NW_OK);
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_PUSH);
    assert_int_equal(zsec_apply(z, s, "tcp://127.0.0.1:5601", false, &err), NW_OK);
    assert_int_equal(zsec_apply(z, s, "tcp://127.0.0.1:5602", false, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "tcp://127.0.0.1:5602"));
    assert_non_null(strstr(err.msg, "collector.curve_server_key_file"));
    /* no allow-list: it cannot serve */
    assert_int_equal(zsec_apply(z, s, "tcp://127.0.0.1:5603", true, &err), NW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "collector.curve_peers"));
    zmq_close(s);
    zsec_destroy(&z);
    zmq_ctx_term(ctx);
}

static void test_keygen(void **state)
{
    struct fx *f = *state;
    char base[256], pub[41];
    struct nw_error err = {0};
    snprintf(base, sizeof(base), "%s/gen", f->dir);
    assert_int_equal(zsec_keygen(base, pub, &err), NW_OK);
    struct stat st;
    assert_int_equal(stat(path_of(f, "gen.key"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(path_of(f, "gen.pub"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(zsec_keygen(base, pub, &err), NW_ERR_CONFIG); /* never overwrites */
    assert_non_null(strstr(err.msg, "not overwritten"));
    struct zsec_options o = {.secret_file = path_of(f, "gen.key"),
                             .public_file = path_of(f, "gen.pub")};
    struct zsec *z = NULL;
    assert_int_equal(zsec_new(&o, &z, &err), NW_OK);
    zsec_destroy(&z);
}

/* ---- the ZAP handler over loopback tcp --------------------------------- */

enum mech { M_CURVE, M_NULL, M_PLAIN };

/* Sends one message from a fresh client; true if the server got it in 1.5 s. */
static bool delivered(void *ctx, void *server, const char *ep, enum mech m, const char *pub,
                      const char *sec, const char *srv_pub)
{
    void *c = zmq_socket(ctx, ZMQ_PUSH);
    int zero = 0;
    zmq_setsockopt(c, ZMQ_LINGER, &zero, sizeof(zero));
    if (m == M_CURVE) {
        zmq_setsockopt(c, ZMQ_CURVE_SERVERKEY, srv_pub, 40);
        zmq_setsockopt(c, ZMQ_CURVE_PUBLICKEY, pub, 40);
        zmq_setsockopt(c, ZMQ_CURVE_SECRETKEY, sec, 40);
    } else if (m == M_PLAIN) {
        zmq_setsockopt(c, ZMQ_PLAIN_USERNAME, "admin", 5);
        zmq_setsockopt(c, ZMQ_PLAIN_PASSWORD, "admin", 5);
    }
    assert_int_equal(zmq_connect(c, ep), 0);
    zmq_send(c, "x", 1, ZMQ_DONTWAIT);
    char b[4];
    int n = zmq_recv(server, b, sizeof(b), 0); /* RCVTIMEO 1500 */
    zmq_close(c);
    return n == 1;
}

static void *serve(void *ctx, struct zsec *z, char *ep, size_t cap)
{
    void *s = zmq_socket(ctx, ZMQ_PULL);
    struct nw_error err = {0};
    int to = 1500, zero = 0;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &to, sizeof(to));
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    assert_int_equal(zsec_apply(z, s, "tcp://127.0.0.1:*", true, &err), NW_OK);
    assert_int_equal(zmq_bind(s, "tcp://127.0.0.1:*"), 0);
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &cap);
    return s;
}

/* The monitor is read by the zsec thread: wait (bounded) for a count. */
static uint64_t wait_count(struct zsec *z, int why, uint64_t want)
{
    uint64_t v = 0;
    for (int i = 0; i < 40; i++) {
        v = why < 0 ? zsec_accepted(z) : zsec_refused(z, (enum zsec_refusal)why);
        if (v >= want) {
            break;
        }
        usleep(50 * 1000);
    }
    return v;
}

static void test_zap_handler(void **state)
{
    struct fx *f = *state;
    char logpath[256];
    snprintf(logpath, sizeof(logpath), "%s/log", f->dir);
    int logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    nw_log_init("test", NW_LOG_DEBUG, NW_LOG_TO_STDERR);
    nw_log_set_output_fd(logfd);
    struct zsec_options o = {.secret_file = path_of(f, "srv.key"),
                             .public_file = path_of(f, "srv.pub"),
                             .peers = path_of(f, "peers")};
    struct zsec *z = NULL;
    struct nw_error err = {0};
    assert_int_equal(zsec_new(&o, &z, &err), NW_OK);
    void *ctx = zmq_ctx_new();
    assert_int_equal(zsec_start(z, ctx, true, &err), NW_OK);
    char ep[64];
    void *s = serve(ctx, z, ep, sizeof(ep));
    assert_true(delivered(ctx, s, ep, M_CURVE, f->cli_pub, f->cli_sec, f->srv_pub));
    assert_int_equal(wait_count(z, -1, 1), 1);
    assert_false(delivered(ctx, s, ep, M_CURVE, f->other_pub, f->other_sec, f->srv_pub));
    assert_true(wait_count(z, ZSEC_REFUSED_UNKNOWN_KEY, 1) >= 1);
    assert_false(delivered(ctx, s, ep, M_NULL, NULL, NULL, NULL));
    assert_true(wait_count(z, ZSEC_REFUSED_MECHANISM, 1) >= 1);
    uint64_t mech = zsec_refused(z, ZSEC_REFUSED_MECHANISM);
    assert_false(delivered(ctx, s, ep, M_PLAIN, NULL, NULL, NULL));
    assert_true(wait_count(z, ZSEC_REFUSED_MECHANISM, mech + 1) >= mech + 1);
    /* the right client key with a wrong idea of the server's key */
    assert_false(delivered(ctx, s, ep, M_CURVE, f->cli_pub, f->cli_sec, f->other_pub));
    /* and the allowed key still works after all that */
    assert_true(delivered(ctx, s, ep, M_CURVE, f->cli_pub, f->cli_sec, f->srv_pub));
    char text[4096];
    size_t len = zsec_metrics_render(z, text, sizeof(text));
    assert_true(len > 0 && len < sizeof(text) - 1);
    assert_non_null(strstr(text, "nw_curve_enabled 1"));
    assert_non_null(strstr(text, "nw_curve_peers_refused_total{reason=\"unknown_key\"} "));
    assert_non_null(strstr(text, "nw_curve_zap_handler 1"));
    zmq_close(s);
    zsec_destroy(&z);
    zmq_ctx_term(ctx);

    /* no handler: ZMQ_ZAP_ENFORCE_DOMAIN makes libzmq refuse even the allowed key */
    assert_int_equal(zsec_new(&o, &z, &err), NW_OK);
    ctx = zmq_ctx_new();
    assert_int_equal(zsec_start(z, ctx, false, &err), NW_OK);
    s = serve(ctx, z, ep, sizeof(ep));
    assert_false(delivered(ctx, s, ep, M_CURVE, f->cli_pub, f->cli_sec, f->srv_pub));
    assert_true(wait_count(z, ZSEC_REFUSED_NO_HANDLER, 1) >= 1);
    assert_int_equal(zsec_accepted(z), 0);
    len = zsec_metrics_render(z, text, sizeof(text));
    assert_non_null(strstr(text, "nw_curve_zap_handler 0"));
    zmq_close(s);
    zsec_destroy(&z);
    zmq_ctx_term(ctx);
    len = zsec_metrics_render(NULL, text, sizeof(text));
    assert_int_equal(len, strlen(text));
    assert_non_null(strstr(text, "nw_curve_enabled 0"));

    /* what was logged: the refused public key, never a secret one */
    nw_log_set_output_fd(2);
    close(logfd);
    char log[16384] = {0};
    int fd = open(logpath, O_RDONLY);
    ssize_t n = read(fd, log, sizeof(log) - 1);
    close(fd);
    assert_true(n > 0);
    assert_non_null(strstr(log, f->other_pub));
    assert_null(strstr(log, f->srv_sec));
    assert_null(strstr(log, f->cli_sec));
    assert_null(strstr(log, f->other_sec));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_z85, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mismatch_and_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_keys_by_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keygen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zap_handler, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
