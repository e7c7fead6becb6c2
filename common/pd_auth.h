/*  pd_auth: keys, trust and CurveZMQ settings shared by every Playdoh program.

    Playdoh is secure by default on a network: the broker runs CurveZMQ
    (libsodium through libzmq) and admits only keys on its allow-list (see
    pd_zap), and workers and clients talk only to a broker whose public key
    they trust. Loopback endpoints (and --local) need no keys.

    Files, all under the configuration directory (pd_auth_config_dir(): the
    PLAYDOH_CONFIG_DIR variable, else $XDG_CONFIG_HOME/playdoh, else
    ~/.config/playdoh), directory mode 0700, files 0600:

        id.key            this account's public certificate (CZMQ zcert format;
                          metadata "name")
        id.key_secret     the same with the secret key (zcert format)
        known_brokers     brokers this account trusts, one per line:
                          ENDPOINT KEY [NAME]; ENDPOINT "*" trusts KEY at any
                          address (for discovery). '#' starts a comment.
        allowed/          on the broker: one public certificate per admitted
                          key, metadata "name" and "role" (worker, client,
                          both, admin); read by pd_zap, reloaded when it changes
        owner.token       on a client without CurveZMQ (loopback): 32 random
                          bytes in hex, made on first use, that the client
                          library sends with every request so that the
                          broker knows whose jobs are whose (pd_auth_owner_token)
        code-clients      on a worker: client keys whose code it runs
                          (--code-policy clients), one per line
        code-modules      on a worker: hashes of the installed modules it runs
                          (--code-policy installed), one per line

    Keys travel as Z85 text, 40 characters (ZeroMQ's encoding of 32 bytes);
    that text is also a key's id in logs, in the ZAP user id and on the wire
    (the `client` of `run` and `mod`, docs/protocol.md).

    The branch that adds UDP discovery uses pd_auth_trust_has() to decide
    whether a beacon's broker key is trusted, and pd_auth_trust_hint() for the
    sentence telling the user how to trust it.
*/
#ifndef PD_AUTH_H
#define PD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_KEY_TXT 41 /* a Z85 key (40 characters) and its NUL */

/* How a program secures its socket. AUTO: CURVE on any endpoint that is not
   loopback, none on loopback. */
typedef enum {
    PD_SEC_AUTO = 0,  /* decide from the endpoint */
    PD_SEC_CURVE = 1, /* CurveZMQ even on loopback (--secure) */
    PD_SEC_NONE = 2   /* no security even on a network (--insecure) */
} pd_sec_mode_t;

/* What a key may do at the broker. */
typedef enum {
    PD_ROLE_NONE = 0,   /* nothing (not on the allow-list) */
    PD_ROLE_WORKER = 1, /* register as a worker and run jobs */
    PD_ROLE_CLIENT = 2, /* submit jobs, upload modules, fetch results */
    PD_ROLE_BOTH = 3,   /* either */
    PD_ROLE_ADMIN = 6   /* a client that may also see, fetch, cancel and release the
                           jobs and tasks of other owners (bit 4 on top of CLIENT) */
} pd_role_t;

#define PD_OWNER_TXT 41       /* an owner id (pd_auth_owner_of_token) and its NUL */
#define PD_OWNER_TOKEN_LEN 32 /* bytes of a client's owner token */

/* A CURVE key pair as Z85 text; sec is empty for a public certificate. */
typedef struct {
    char pub[PD_KEY_TXT];   /* public key */
    char sec[PD_KEY_TXT];   /* secret key, or "" */
    char name[64];          /* the certificate's "name" metadata, or "" */
} pd_keypair_t;

/* ---- paths ------------------------------------------------------------- */

/* The configuration directory (see above). Returns a string the caller
   frees, or NULL when neither PLAYDOH_CONFIG_DIR, XDG_CONFIG_HOME nor HOME
   is set. */
char *pd_auth_config_dir(void);
/* Creates dir (and its parents) with mode 0700 when missing. Returns 0 or
   PD_ESYS with a sentence in why. */
int pd_auth_make_dir(const char *dir, char *why, size_t whycap);

/* ---- keys -------------------------------------------------------------- */

/* True when text is a Z85 key: exactly 40 characters that decode. */
bool pd_auth_key_valid(const char *text);

/* Creates a new key pair as dir/id.key and dir/id.key_secret (mode 0600,
   dir created 0700), with name as metadata (NULL: user@host). Refuses to
   replace an existing pair unless force. Returns 0, PD_EINVAL (a pair
   exists: why says so), or PD_ESYS; out (when not NULL) gets the pair. */
int pd_auth_keygen(const char *dir, const char *name, bool force, pd_keypair_t *out, char *why,
                   size_t whycap);

/* Loads a key pair from a certificate file (its secret from file_secret).
   With need_secret, a missing secret, or a secret file readable by others
   (like ssh, Playdoh refuses such a key), is an error. Returns 0, PD_ENOKEY
   (no such file: why names the command to run), PD_EAUTH (unreadable,
   malformed, or unprotected) with a sentence in why. */
int pd_auth_key_load(const char *file, bool need_secret, pd_keypair_t *out, char *why,
                     size_t whycap);

/* zcert_load(path) for a file that may be anyone's: NULL when path (or
   path_secret, which zcert_load reads first when it exists) is no
   well-formed ZPL text, is over 64 KiB, or the path is 240 bytes or more
   (CZMQ's name buffers). Checking first matters: CZMQ 4.2's zconfig_load
   leaks what it opened when the text does not parse. */
struct _zcert_t *pd_auth_cert_load(const char *path);
/* Reads a public key given on a command line: either 40 characters of Z85,
   or the path of a file: a text file whose first line is the key (what
   `playdoh-keygen show` prints), or a public certificate (whose name
   metadata goes into name, when not NULL). Returns 0 or PD_EINVAL with a
   sentence in why. */
int pd_auth_key_from_arg(const char *arg, char pub[PD_KEY_TXT], char *name, size_t namecap,
                         char *why, size_t whycap);

/* ---- trusted brokers (known_brokers) ----------------------------------- */

/* Finds the key trusted for endpoint in dir/known_brokers: the last line
   naming exactly that endpoint, else the last "*" line. Returns 0 with key
   set, or PD_ENOTRUSTED when none (why then says how to trust one). */
int pd_auth_trust_find(const char *dir, const char *endpoint, char key[PD_KEY_TXT], char *why,
                       size_t whycap);
/* True when key is trusted in dir/known_brokers for endpoint, or for any
   endpoint when endpoint is NULL (a discovery beacon announces a key and an
   address: trust is the key's, so a forged beacon leads nowhere). */
bool pd_auth_trust_has(const char *dir, const char *endpoint, const char *key);
/* Adds "endpoint key name" to dir/known_brokers (created 0600), replacing
   lines for the same endpoint. Returns 0, PD_EINVAL (bad key or endpoint)
   or PD_ESYS, with a sentence in why. */
int pd_auth_trust_add(const char *dir, const char *endpoint, const char *key, const char *name,
                      char *why, size_t whycap);
/* Removes every line whose endpoint or key is what. Returns how many, or
   PD_ESYS. */
int pd_auth_trust_remove(const char *dir, const char *what, char *why, size_t whycap);
/* Writes the sentence that tells a user how to trust a broker: with key
   (known from a beacon) the exact command; without, where to get the key. */
void pd_auth_trust_hint(const char *endpoint, const char *key, char *buf, size_t cap);

/* ---- the broker's allow-list (allowed/) -------------------------------- */

/* Admits key in role: writes allow_dir/<name>.key (a public certificate with
   metadata name and role), replacing any file of the same key. name NULL or
   "": the key's first characters. Returns 0, PD_EINVAL or PD_ESYS with a
   sentence in why. */
int pd_auth_allow_add(const char *allow_dir, const char *key, pd_role_t role, const char *name,
                      char *why, size_t whycap);
/* Removes the certificates of allow_dir whose key or name is what. Returns
   how many, or PD_ESYS. */
int pd_auth_allow_remove(const char *allow_dir, const char *what, char *why, size_t whycap);

/* ---- roles ------------------------------------------------------------- */

/* "worker", "client", "both", "admin" or "none"; static storage. */
const char *pd_role_name(pd_role_t role);
/* Parses a role name; returns 0 or PD_EINVAL. "none" is not accepted. */
int pd_role_parse(const char *name, pd_role_t *role);
/* True when a key holding `have` may act as `need`. */
bool pd_role_allows(pd_role_t have, pd_role_t need);

/* ---- owners ------------------------------------------------------------ */

/* Who owns a job, a task or shared data at the broker (docs/security.md):
   with CurveZMQ the submitter's public key (40 characters of Z85); without,
   "local:" and 32 hex digits of a hash of the owner token the client sent
   (38 characters); "" for a request that carried neither (anonymous: what
   older clients send). */

/* Loads dir/owner.token (64 hex digits), or makes it (mode 0600, dir 0700)
   when it is missing, into tok. A file readable by other users is refused
   like a secret key is. Returns 0, or PD_EAUTH (unprotected or malformed)
   or PD_ESYS with a sentence in why. */
int pd_auth_owner_token(const char *dir, uint8_t tok[PD_OWNER_TOKEN_LEN], char *why,
                        size_t whycap);
/* The owner id of a token of len bytes (1 .. 64): "local:" + 32 hex. */
void pd_auth_owner_of_token(const void *tok, size_t len, char out[PD_OWNER_TXT]);
/* True when owner is a key (CurveZMQ), not a token's id or "". */
bool pd_auth_owner_is_key(const char *owner);
/* True when owner is a key or a token's id, as written above. */
bool pd_auth_owner_valid(const char *owner);

/* ---- endpoints and sockets --------------------------------------------- */

/* True for endpoints that never leave this machine: tcp to 127.0.0.0/8,
   [::1], localhost or interface lo; ipc://; inproc://. Anything else
   (a wildcard such as tcp://0.0.0.0:5555, a host name, another address) is
   a network endpoint. */
bool pd_auth_endpoint_is_loopback(const char *endpoint);
/* The mode actually used: CURVE or NONE. */
pd_sec_mode_t pd_auth_resolve(pd_sec_mode_t asked, const char *endpoint);
/* Parses "auto", "curve" (or "secure") and "none" (or "insecure"). */
int pd_auth_mode_parse(const char *text, pd_sec_mode_t *mode);

/* Makes sock a CURVE server with key k (secret required) and sets the ZAP
   domain "playdoh", so pd_zap decides who connects. Call before bind.
   Returns 0 or PD_ESYS. */
int pd_auth_apply_server(void *sock, const pd_keypair_t *k);
/* Makes sock a CURVE client with key k that accepts only server_key. Call
   before connect. Returns 0 or PD_ESYS. */
int pd_auth_apply_client(void *sock, const pd_keypair_t *k, const char *server_key);

/* The peer of a received frame (a zmq_msg_t *): its role and key, as pd_zap
   set them. Without CURVE (loopback, --insecure) every peer is PD_ROLE_BOTH
   with *key NULL. *key and *name (when not NULL) are borrowed from msg. */
pd_role_t pd_auth_msg_peer(void *zmq_msg, const char **key, const char **name);

/* A sentence for a ZeroMQ handshake-failure monitor event (event, value),
   for log lines, as the server (the broker) or as a client sees it.
   Static storage. */
const char *pd_auth_handshake_why(uint32_t event, uint32_t value, bool as_server);

/* Reads the next event pending on a libzmq socket monitor (the PAIR socket
   connected to zmq_socket_monitor's endpoint) without waiting, drops its
   address frame, and sets *event and *value (0 for a short frame). Returns
   false when none is pending. The one decoder of monitor frames for the
   broker, the worker and the client, each of which polls its monitor in its
   own loop: CZMQ's zmonitor would add an actor thread per socket and hand
   the events over as text. */
bool pd_auth_monitor_next(void *mon, uint16_t *event, uint32_t *value);

#endif
