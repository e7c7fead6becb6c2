/*  pd_jobs_tokens: submit tokens (idempotency keys) of the job table: a
    hash from the token (hex) to its record, plus a ring of the records in
    arrival order for expiry.
*/
#include "pd_jobs_int.h"
#include "pd_error.h"

#include <assert.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* The token in hex (its hash key) into out (2 * PD_JOBS_TOKEN_MAX + 1 bytes). */
static void s_token_hex(const void *token, size_t len, char *out)
{
    sodium_bin2hex(out, 2 * PD_JOBS_TOKEN_MAX + 1, token, len);
}

bool pd_jobs_token_find(pd_jobs_t *j, const void *token, size_t len, uint64_t *first,
                        uint32_t *n)
{
    if (len == 0 || len > PD_JOBS_TOKEN_MAX)
        return false;
    char key[2 * PD_JOBS_TOKEN_MAX + 1];
    s_token_hex(token, len, key);
    pd_jobs_token_t *t = zhashx_lookup(j->tokens, key);
    if (!t || t->first == 0)
        return false;
    *first = t->first;
    *n = t->n;
    return true;
}

void pd_jobs_token_drop(pd_jobs_t *j, const void *token, size_t len)
{
    if (len == 0 || len > PD_JOBS_TOKEN_MAX)
        return;
    char key[2 * PD_JOBS_TOKEN_MAX + 1];
    s_token_hex(token, len, key);
    pd_jobs_token_t *t = zhashx_lookup(j->tokens, key);
    if (t) /* stays in the ring until it expires; marked withdrawn */
        t->first = 0;
}

/* Forgets the oldest token. */
static void s_token_pop(pd_jobs_t *j)
{
    pd_jobs_token_t *t = j->tokring[j->tokhead];
    zhashx_delete(j->tokens, t->key);
    free(t);
    j->tokhead = (j->tokhead + 1) & (j->tokcap - 1);
    j->toklen--;
}

int pd_jobs_token_add(pd_jobs_t *j, const void *token, size_t len, uint64_t first, uint32_t n,
                      uint32_t now_s)
{
    assert(len > 0 && len <= PD_JOBS_TOKEN_MAX);
    if (j->toklen >= PD_JOBS_TOKENS_MAX)
        s_token_pop(j);
    if (j->toklen == j->tokcap) {
        size_t cap = j->tokcap * 2;
        pd_jobs_token_t **r = malloc(cap * sizeof *r);
        if (!r)
            return PD_ENOMEM;
        for (size_t i = 0; i < j->toklen; i++)
            r[i] = j->tokring[(j->tokhead + i) & (j->tokcap - 1)];
        free(j->tokring);
        j->tokring = r;
        j->tokcap = cap;
        j->tokhead = 0;
    }
    pd_jobs_token_t *t = calloc(1, sizeof *t);
    if (!t)
        return PD_ENOMEM;
    t->first = first;
    t->n = n;
    t->sec = now_s;
    t->len = (uint32_t) len;
    memcpy(t->token, token, len);
    s_token_hex(token, len, t->key);
    pd_jobs_token_t *known = zhashx_lookup(j->tokens, t->key);
    if (known) {
        if (known->first == 0) { /* withdrawn: this submit takes its place */
            known->first = first;
            known->n = n;
        }
        free(t); /* else the first submit's ids stand */
        return 0;
    }
    if (zhashx_insert(j->tokens, t->key, t) != 0) {
        free(t);
        return PD_ENOMEM;
    }
    j->tokring[(j->tokhead + j->toklen) & (j->tokcap - 1)] = t;
    j->toklen++;
    return 0;
}

size_t pd_jobs_token_expire(pd_jobs_t *j, uint32_t now_s, uint32_t ttl_s)
{
    size_t n = 0;
    while (j->toklen && (uint64_t) j->tokring[j->tokhead]->sec + ttl_s <= now_s) {
        s_token_pop(j);
        n++;
    }
    return n;
}

void pd_jobs_token_each(pd_jobs_t *j,
                        void (*fn)(void *user, const uint8_t *token, size_t len, uint64_t first,
                                   uint32_t n, uint32_t sec),
                        void *user)
{
    for (size_t i = 0; i < j->toklen; i++) {
        const pd_jobs_token_t *t = j->tokring[(j->tokhead + i) & (j->tokcap - 1)];
        if (t->first)
            fn(user, t->token, t->len, t->first, t->n, t->sec);
    }
}
