/*  Slurm pilots on a build without sbatch (Windows: Slurm runs on Linux;
    docs/windows.md). The call exists so that playdoh-submit links on every
    platform; it refuses with a sentence that says what to do instead.
*/
#include "pd_slurm.h"

#include <stdio.h>

int pd_slurm_main(int argc, char **argv, const pd_slurm_globals_t *g)
{
    (void) argc;
    (void) argv;
    (void) g;
    fprintf(stderr, "playdoh-submit slurm: Slurm pilots are submitted from a Linux machine of "
                    "the Slurm cluster (sbatch is not available on this platform)\n");
    return 2;
}
