/*  pd_web_static: the dashboard page's files, embedded in the broker at
    build time from web/static (web/embed.py writes pd_web_static.c), so
    that nothing is installed beside the program and no CDN is reached. */
#ifndef PD_WEB_STATIC_H
#define PD_WEB_STATIC_H

#include <stddef.h>

typedef struct {
    const char *path; /* URL path: "/", "/app.js", "/vendor/uPlot.iife.min.js" */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
} pd_web_file_t;

/* The embedded file served at url, or NULL. */
const pd_web_file_t *pd_web_static_find(const char *url);

#endif
