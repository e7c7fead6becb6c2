/*  wine_cc: the C compiler of a Windows worker under Wine, in tests only.

    A Windows worker compiles task modules with the compiler it is given
    (PLAYDOH_CC). Under Wine there is no Windows-hosted MinGW-w64 gcc, and
    Wine starts a Linux program through CreateProcess without waiting for it
    or passing its exit status on, so the worker could not tell a failed
    compile from a good one. This Windows program runs the Linux
    cross-compiler named by $PLAYDOH_WINE_CC (default
    /usr/bin/x86_64-w64-mingw32-gcc-posix) with Wine's own spawn call, which
    waits and returns the status, copies what the compiler printed to its
    own standard error (the Linux process writes to Wine's descriptors, not
    to the worker's pipes), and exits with that status: the worker sees an
    ordinary compiler process. On a real Windows machine the worker runs gcc
    or clang itself.

        PLAYDOH_CC=wine_cc.exe wine playdoh-worker.exe ...
*/
#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef LONG (*s_spawn_fn)(char *const argv[], int wait);

int main(int argc, char **argv)
{
    HMODULE nt = GetModuleHandleA("ntdll.dll");
    s_spawn_fn spawn = nt ? (s_spawn_fn) (void *) GetProcAddress(nt, "__wine_unix_spawnvp") : NULL;
    if (!spawn) {
        fprintf(stderr, "wine_cc: not running under Wine (no __wine_unix_spawnvp): use gcc\n");
        return 127;
    }
    const char *cc = getenv("PLAYDOH_WINE_CC");
    char log[64];
    snprintf(log, sizeof log, "/tmp/playdoh-wine-cc.%lu.log", (unsigned long) GetCurrentProcessId());
    /* sh -c 'exec "$0" "$@" >LOG 2>&1' CC ARGS... */
    char script[128];
    snprintf(script, sizeof script, "exec \"$0\" \"$@\" >%s 2>&1", log);
    char **av = calloc((size_t) argc + 4, sizeof *av);
    if (!av)
        return 127;
    av[0] = "/bin/sh";
    av[1] = "-c";
    av[2] = script;
    av[3] = (char *) (cc && *cc ? cc : "/usr/bin/x86_64-w64-mingw32-gcc-posix");
    for (int i = 1; i < argc; i++)
        av[3 + i] = argv[i];
    LONG status = spawn(av, 1);
    char winlog[80];
    snprintf(winlog, sizeof winlog, "Z:%s", log);
    for (char *p = winlog; *p; p++)
        if (*p == '/')
            *p = '\\';
    FILE *f = fopen(winlog, "rb");
    if (f) {
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            fwrite(buf, 1, n, stderr);
        fclose(f);
        DeleteFileA(winlog);
    }
    free(av);
    return status < 0 || status > 255 ? 127 : (int) status;
}
