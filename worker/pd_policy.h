/*  pd_policy: what code the owner of a worker's machine lets run on it.

    A worker runs code that arrives over the network. Its owner picks one of
    three policies (playdoh-worker --code-policy):

      any        code shipped by any client the broker admits (the default);
      clients    only jobs submitted by the client keys listed in a file
                 (--code-list, default CONFIG/code-clients);
      installed  only modules installed on this machine and listed by hash
                 in a file (--code-list, default CONFIG/code-modules);
                 modules shipped by clients are not even stored; the shell
                 commands of `playdoh-submit exec` (the module "builtin")
                 only when the list holds the word builtin.

    List files hold one entry per line (its first word: a Z85 client key or
    a module's SHA-256 in lowercase hex), '#' comments, and are read again
    whenever they change, so the owner edits them while the worker runs.
    The broker names each job's submitter (docs/protocol.md, `run`); a job
    the policy refuses fails with PD_EREFUSED and a sentence for the
    submitter that says why and who can change it.
*/
#ifndef PD_POLICY_H
#define PD_POLICY_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    PD_POLICY_ANY = 0,       /* code from any admitted client */
    PD_POLICY_CLIENTS = 1,   /* code from listed client keys only */
    PD_POLICY_INSTALLED = 2  /* installed, listed modules only */
} pd_policy_mode_t;

typedef struct pd_policy pd_policy_t;

/* Parses "any", "clients" or "installed"; returns 0 or PD_EINVAL. */
int pd_policy_parse(const char *text, pd_policy_mode_t *mode);
/* "any", "clients" or "installed"; static storage. */
const char *pd_policy_name(pd_policy_mode_t mode);

/* Creates the policy; list is the file of keys (clients) or hashes
   (installed), ignored for any (copied). host names the machine in
   refusals. Logs how many entries the list holds, and warns when it holds
   none. Returns NULL only when out of memory. */
pd_policy_t *pd_policy_new(pd_policy_mode_t mode, const char *list, const char *host);
void pd_policy_destroy(pd_policy_t **p);

pd_policy_mode_t pd_policy_mode(const pd_policy_t *p);
/* False when shipped modules must not be stored (installed). */
bool pd_policy_stores_shipped(const pd_policy_t *p);

/* May a job of module hash (named name), submitted by client key (""
   without CURVE), run here? True, or false with a sentence for the
   submitter in msg (cap bytes). Reads the list again when it changed. */
bool pd_policy_allows(pd_policy_t *p, const char *client, const char *hash, const char *name,
                      char *msg, size_t cap);

/* Adds entry (a first word) to the list file path unless it is there,
   with comment after it. Creates the file (0600) and its directory.
   Returns 0, or PD_ESYS with a sentence in why. */
int pd_policy_list_add(const char *path, const char *entry, const char *comment, char *why,
                       size_t whycap);

#endif
