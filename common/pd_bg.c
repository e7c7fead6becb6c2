/*  pd_bg: work done off an event loop, on one background thread (a CZMQ
    actor). Each piece of work travels to the thread and back as a pointer
    in one frame: nothing is copied. */
#include "pd_bg.h"
#include "pd_error.h"

#include <czmq.h>
#include <stdlib.h>

typedef struct {
    pd_bg_fn *work, *done;
    void *arg;
} s_item_t;

struct pd_bg {
    zactor_t *actor;
    size_t pending;
};

static void s_thread(zsock_t *pipe, void *args)
{
    (void) args;
    zsock_signal(pipe, 0);
    for (;;) {
        zmsg_t *msg = zmsg_recv(pipe);
        if (!msg)
            break;
        zframe_t *f = zmsg_first(msg);
        if (f && zframe_streq(f, "$TERM")) {
            zmsg_destroy(&msg);
            break;
        }
        s_item_t *it = NULL;
        if (f && zframe_size(f) == sizeof it)
            memcpy(&it, zframe_data(f), sizeof it);
        zmsg_destroy(&msg);
        if (!it)
            continue;
        it->work(it->arg);
        /* Back to the loop: the pointer again. */
        zsock_send(pipe, "b", &it, sizeof it);
    }
}

pd_bg_t *pd_bg_new(void)
{
    pd_bg_t *bg = calloc(1, sizeof *bg);
    if (!bg)
        return NULL;
    /* The programs install their own SIGINT/SIGTERM handlers: CZMQ, which
       sets up on its first actor, must not replace them. */
    zsys_handler_set(NULL);
    bg->actor = zactor_new(s_thread, NULL);
    if (!bg->actor) {
        free(bg);
        return NULL;
    }
    return bg;
}

int pd_bg_submit(pd_bg_t *bg, pd_bg_fn *work, pd_bg_fn *done, void *arg)
{
    s_item_t *it = malloc(sizeof *it);
    if (!it)
        return PD_ENOMEM;
    *it = (s_item_t){.work = work, .done = done, .arg = arg};
    if (zsock_send(bg->actor, "b", &it, sizeof it) != 0) {
        free(it);
        return PD_ESYS;
    }
    bg->pending++;
    return 0;
}

void *pd_bg_socket(pd_bg_t *bg) { return zsock_resolve(zactor_sock(bg->actor)); }

size_t pd_bg_pending(const pd_bg_t *bg) { return bg->pending; }

/* Takes one finished piece of work (waiting for it when block) and runs
   its done; false when there was none. */
static bool s_take(pd_bg_t *bg, bool block)
{
    zsock_t *s = zactor_sock(bg->actor);
    if (!block && !(zsock_events(s) & ZMQ_POLLIN))
        return false;
    zframe_t *f = zframe_recv(s);
    if (!f)
        return false;
    s_item_t *it = NULL;
    if (zframe_size(f) == sizeof it)
        memcpy(&it, zframe_data(f), sizeof it);
    zframe_destroy(&f);
    if (!it)
        return false;
    bg->pending--;
    if (it->done)
        it->done(it->arg);
    free(it);
    return true;
}

int pd_bg_drain(pd_bg_t *bg)
{
    int n = 0;
    while (s_take(bg, false))
        n++;
    return n;
}

void pd_bg_finish(pd_bg_t *bg)
{
    while (bg->pending > 0 && s_take(bg, true)) {
    }
}

void pd_bg_destroy(pd_bg_t **p)
{
    if (!p || !*p)
        return;
    pd_bg_t *bg = *p;
    pd_bg_finish(bg);
    zactor_destroy(&bg->actor);
    free(bg);
    *p = NULL;
}
