/*
 * nw_clientid.c - a mosquitto 2.0 plugin: a client id belongs to whoever
 * owns that identity.
 *
 * The problem. MQTT says a broker that receives a CONNECT with a client id
 * already in use disconnects the older connection. mosquitto checks *who*
 * connects (certificate, password) but not *which client id* they claim, so
 * any device with a valid certificate can connect as "DG3-0042" and kick the
 * real DG3-0042 off the broker, over and over (DESIGN section 8).
 *
 * The rule enforced here, at authentication time (MOSQ_EVT_BASIC_AUTH, which
 * mosquitto runs before it looks up and disconnects an existing session):
 *
 *   - A client that presented a certificate (the TLS listener has
 *     `require_certificate true`) is identified by the certificate's single
 *     Common Name. The CN must be a valid identity (1-64 characters of
 *     [A-Za-z0-9_-], DESIGN section 3), a username sent in CONNECT must be
 *     absent or equal to it, and the client id must equal it. The plugin then
 *     makes the CN the connection's username (what `use_identity_as_username`
 *     would do), so `%u` in the ACL file is the certificate's CN, and
 *     accepts: the TLS layer has already verified the chain, the dates and
 *     the CA.
 *   - A client without a certificate must send a valid username, and its
 *     client id must equal it. The plugin then defers to the password file,
 *     which checks the password.
 *   - Accounts whose username starts with the configured exempt prefix
 *     (`plugin_opt_exempt_prefix`, e.g. the collector's account, whose
 *     instances need distinct client ids) may use any client id that starts
 *     with the same prefix - never a device's id, as long as no device id
 *     starts with the prefix (deploy/certs.sh refuses to make such a device
 *     certificate).
 *   - Everything else is refused (CONNACK 0x87 "not authorized" under MQTT 5,
 *     5 under 3.1.1), logged with the address, client id and reason, and the
 *     connection that legitimately holds the id is not touched.
 *
 * Why not `use_identity_as_username true`? With that option mosquitto 2.0
 * takes the username from the certificate and then skips every
 * authentication callback ("authentication assumed to be cleared" in
 * src/handle_connect.c), so no plugin could see the connection before the
 * takeover. The plugin does the same CN-to-username mapping itself instead;
 * the TLS listener therefore must NOT set use_identity_as_username (with it,
 * this plugin is never asked; tests/security/broker_identity.sh checks that
 * the deploy config leaves it off).
 *
 * Options (mosquitto.conf, after `plugin /path/nw_clientid.so`):
 *   plugin_opt_exempt_prefix PREFIX   optional, see above
 *   plugin_opt_log_accepted true      optional, log one line per accepted
 *                                     connection with its identity
 *
 * Nothing here logs a password or any part of one.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#define NW_ID_MAX 64   /* DESIGN section 3: device ids are 1-64 characters */
#define PREFIX_MAX 64  /* longest exempt prefix */
#define REASON_MAX 160 /* one refusal reason */

/* The plugin's state: its options, read once at start (immutable after). */
struct nw_clientid {
    mosquitto_plugin_id_t *id;
    char exempt_prefix[PREFIX_MAX + 1];
    size_t exempt_len;
    bool log_accepted;
};

/* The three entry points mosquitto looks up (declared in mosquitto_plugin.h)
 * are the only symbols the module exports (built with hidden visibility). */
#define NW_EXPORT __attribute__((visibility("default")))

/* valid_identity: 1-NW_ID_MAX characters of [A-Za-z0-9_-]. Anything else
 * could not be a device id, and characters such as '+', '#' or '/' would
 * change the meaning of "%u" in an ACL pattern. */
static bool valid_identity(const char *s)
{
    size_t n = 0;
    if (!s) {
        return false;
    }
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n >= NW_ID_MAX || !(isalnum(c) || c == '_' || c == '-') || c > 0x7f) {
            return false;
        }
    }
    return n > 0;
}

/* cert_cn: copies the certificate's Common Name into out (out_size bytes).
 * Refuses a subject with no CN, with more than one CN (which one would be
 * "the" identity?), an embedded NUL, or a CN that is not a valid identity.
 * Returns true on success; otherwise writes the reason into why. The
 * certificate is borrowed. */
static bool cert_cn(X509 *cert, char *out, size_t out_size, char *why, size_t why_size)
{
    X509_NAME *name = X509_get_subject_name(cert);
    if (!name) {
        snprintf(why, why_size, "certificate without a subject");
        return false;
    }
    int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (i < 0) {
        snprintf(why, why_size, "certificate subject has no CN");
        return false;
    }
    if (X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0) {
        snprintf(why, why_size, "certificate subject has more than one CN");
        return false;
    }
    const ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    if (!data) {
        snprintf(why, why_size, "certificate CN unreadable");
        return false;
    }
    int len = ASN1_STRING_length(data);
    const unsigned char *bytes = ASN1_STRING_get0_data(data);
    if (len <= 0 || (size_t)len >= out_size || !bytes || memchr(bytes, '\0', (size_t)len)) {
        snprintf(why, why_size, "certificate CN empty, too long or with a NUL byte");
        return false;
    }
    memcpy(out, bytes, (size_t)len);
    out[len] = '\0';
    if (!valid_identity(out)) {
        snprintf(why, why_size, "certificate CN is not 1-%d of [A-Za-z0-9_-]", NW_ID_MAX);
        return false;
    }
    return true;
}

/* id_allowed: may the owner of identity `who` use client id `client_id`?
 * Equal, or both start with the exempt prefix. */
static bool id_allowed(const struct nw_clientid *p, const char *who, const char *client_id)
{
    if (!client_id) {
        return false;
    }
    if (strcmp(who, client_id) == 0) {
        return true;
    }
    return p->exempt_len > 0 && strncmp(who, p->exempt_prefix, p->exempt_len) == 0 &&
           strncmp(client_id, p->exempt_prefix, p->exempt_len) == 0;
}

static int refuse(const struct mosquitto *client, const char *client_id, const char *why)
{
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "nw_clientid: refused client id '%s' from %s: %s",
                         client_id ? client_id : "", mosquitto_client_address(client), why);
    return MOSQ_ERR_AUTH;
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
    (void)event;
    struct mosquitto_evt_basic_auth *ed = event_data;
    const struct nw_clientid *p = userdata;
    struct mosquitto *client = ed->client;
    const char *client_id = mosquitto_client_id(client);
    char why[REASON_MAX];

    X509 *cert = mosquitto_client_certificate(client);
    if (cert) {
        char cn[NW_ID_MAX + 1];
        bool ok = cert_cn(cert, cn, sizeof(cn), why, sizeof(why));
        X509_free(cert);
        if (!ok) {
            return refuse(client, client_id, why);
        }
        if (ed->username && strcmp(ed->username, cn) != 0) {
            snprintf(why, sizeof(why), "username '%.64s' differs from certificate CN '%s'",
                     ed->username, cn);
            return refuse(client, client_id, why);
        }
        if (!id_allowed(p, cn, client_id)) {
            snprintf(why, sizeof(why), "client id differs from certificate CN '%s'", cn);
            return refuse(client, client_id, why);
        }
        /* From here on ed->username may be freed: mosquitto_set_username
         * replaces the connection's username (and re-finds its ACLs). */
        int rc = mosquitto_set_username(client, cn);
        if (rc != MOSQ_ERR_SUCCESS) {
            snprintf(why, sizeof(why), "cannot set username: %s", mosquitto_strerror(rc));
            return refuse(client, client_id, why);
        }
        if (p->log_accepted) {
            mosquitto_log_printf(MOSQ_LOG_INFO, "nw_clientid: '%s' from %s by certificate",
                                 client_id, mosquitto_client_address(client));
        }
        return MOSQ_ERR_SUCCESS;
    }

    if (!ed->username) {
        return refuse(client, client_id, "neither a certificate nor a username");
    }
    if (!valid_identity(ed->username)) {
        return refuse(client, client_id, "username is not 1-64 of [A-Za-z0-9_-]");
    }
    if (!id_allowed(p, ed->username, client_id)) {
        snprintf(why, sizeof(why), "client id differs from username '%s'", ed->username);
        return refuse(client, client_id, why);
    }
    if (p->log_accepted) {
        mosquitto_log_printf(MOSQ_LOG_INFO, "nw_clientid: '%s' from %s, password check next",
                             client_id, mosquitto_client_address(client));
    }
    /* The identity is consistent; whether the password is right is the
     * password file's decision (the next basic-auth check in line). */
    return MOSQ_ERR_PLUGIN_DEFER;
}

NW_EXPORT int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
    for (int i = 0; i < supported_version_count; i++) {
        if (supported_versions[i] == 5) {
            return 5;
        }
    }
    return -1;
}

NW_EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                                    struct mosquitto_opt *options, int option_count)
{
    struct nw_clientid *p = mosquitto_calloc(1, sizeof(*p));
    if (!p) {
        return MOSQ_ERR_NOMEM;
    }
    p->id = identifier;
    for (int i = 0; i < option_count; i++) {
        const char *k = options[i].key, *v = options[i].value ? options[i].value : "";
        if (strcmp(k, "exempt_prefix") == 0) {
            size_t n = strlen(v);
            if (n == 0 || n > PREFIX_MAX || !valid_identity(v)) {
                mosquitto_log_printf(MOSQ_LOG_ERR,
                                     "nw_clientid: plugin_opt_exempt_prefix must be 1-%d "
                                     "of [A-Za-z0-9_-], got '%s'",
                                     PREFIX_MAX, v);
                mosquitto_free(p);
                return MOSQ_ERR_INVAL;
            }
            memcpy(p->exempt_prefix, v, n + 1);
            p->exempt_len = n;
        } else if (strcmp(k, "log_accepted") == 0) {
            if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
                mosquitto_log_printf(MOSQ_LOG_ERR,
                                     "nw_clientid: plugin_opt_log_accepted must be true or "
                                     "false, got '%s'",
                                     v);
                mosquitto_free(p);
                return MOSQ_ERR_INVAL;
            }
            p->log_accepted = strcmp(v, "true") == 0;
        } else {
            /* An unknown option is a typo that would silently weaken the
             * policy: refuse to start. */
            mosquitto_log_printf(MOSQ_LOG_ERR, "nw_clientid: unknown option plugin_opt_%s", k);
            mosquitto_free(p);
            return MOSQ_ERR_INVAL;
        }
    }
    int rc = mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, p);
    if (rc != MOSQ_ERR_SUCCESS) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "nw_clientid: cannot register: %s",
                             mosquitto_strerror(rc));
        mosquitto_free(p);
        return rc;
    }
    *userdata = p;
    mosquitto_log_printf(MOSQ_LOG_INFO,
                         "nw_clientid: client id must equal certificate CN or "
                         "username%s%s%s",
                         p->exempt_len ? " (exempt prefix '" : "", p->exempt_prefix,
                         p->exempt_len ? "')" : "");
    return MOSQ_ERR_SUCCESS;
}

NW_EXPORT int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options,
                                       int option_count)
{
    (void)options;
    (void)option_count;
    struct nw_clientid *p = userdata;
    if (p) {
        mosquitto_callback_unregister(p->id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
        mosquitto_free(p);
    }
    return MOSQ_ERR_SUCCESS;
}
