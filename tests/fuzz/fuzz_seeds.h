/*  fuzz_seeds.h: what the seed corpus (make_seeds.c) and the harnesses
    share: the peers' keys and the modules the seeds ship. */
#ifndef PD_FUZZ_SEEDS_H
#define PD_FUZZ_SEEDS_H

/* Public keys (Z85) of the client, the two workers and a revoked key. */
#define PD_FUZZ_KEY_CLIENT  "boZ)Qo$+()!ze:vm-pG&PsYE:1]-vNH0<T>81[LO"
#define PD_FUZZ_KEY_WORKER  "v&QrZHNc]-Nd^g4Q!MkEmvl?@]t/*{vE<jou7Csz"
#define PD_FUZZ_KEY_BOTH    "Xs#yOVis$[DTei[CE(+Gfas=>a<w21kXo!8{F>]^"
#define PD_FUZZ_KEY_REVOKED "5eBC:hBfV*J}@WA+^%5+mi21XOYwSy-QJzgcZ}hn"

/* The module of examples/square.c's kind that every seed ships. */
#define PD_FUZZ_MODULE_SRC "#include <playdoh_task.h>\nPD_TASK_DOUBLE(square, x) { return x * x; }\n"
/* The CUDA module GPU seeds ship beside it. */
#define PD_FUZZ_CU_SRC "extern \"C\" __global__ void k(float *x) { x[0] = 1; }\n"

#endif
