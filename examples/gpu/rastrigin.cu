/*  rastrigin.cu: the GPU half of examples/gpu/rastrigin.c.

    CUDA C source, shipped with the jobs and compiled on each GPU worker by
    NVRTC for its own GPU (playdoh-submit map --gpu rastrigin.c ... finds
    this file beside rastrigin.c). Kernels are extern "C" so that the task
    finds them by these names.

    The Rastrigin function, f(x) = 10 D + sum_d (x_d^2 - 10 cos(2 pi x_d)),
    a standard test of optimisers: minimum 0 at the origin, a grid of local
    minima elsewhere, usually searched in [-5.12, 5.12]^D.
*/

#define PD_PI 3.14159265358979323846

/* One thread per individual: f[i] = rastrigin(x[i*dim .. i*dim+dim)). */
extern "C" __global__ void rastrigin(const double *x, double *f, int n, int dim)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    const double *p = x + (size_t) i * dim;
    double s = 10.0 * dim;
    for (int d = 0; d < dim; d++)
        s += p[d] * p[d] - 10.0 * cos(2.0 * PD_PI * p[d]);
    f[i] = s;
}

/* splitmix64: the same generator as rastrigin.c's, so that CPU and GPU
   evaluate the same points. */
__device__ unsigned long long pd_mix(unsigned long long z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Coordinate d of individual i of the population named by seed, uniform in
   [-5.12, 5.12). */
__device__ double pd_coord(unsigned long long seed, unsigned long long i, int d)
{
    unsigned long long h = pd_mix(seed ^ pd_mix(i * 1024ull + (unsigned long long) d));
    return -5.12 + 10.24 * ((double) (h >> 11) * (1.0 / 9007199254740992.0));
}

/* The benchmark: individuals first .. first+n-1 of population seed are
   generated on the device (no transfer) and evaluated; each block of 256
   threads writes the minimum and the sum of its fitness values. */
extern "C" __global__ void rastrigin_gen(unsigned long long seed, unsigned long long first,
                                         int n, int dim, double *bmin, double *bsum)
{
    __shared__ double smin[256];
    __shared__ double ssum[256];
    int t = threadIdx.x;
    int i = blockIdx.x * blockDim.x + t;
    double f = 1.0e308, s = 0.0;
    if (i < n) {
        f = 10.0 * dim;
        for (int d = 0; d < dim; d++) {
            double x = pd_coord(seed, first + (unsigned long long) i, d);
            f += x * x - 10.0 * cos(2.0 * PD_PI * x);
        }
        s = f;
    }
    smin[t] = f;
    ssum[t] = s;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (t < k) {
            smin[t] = fmin(smin[t], smin[t + k]);
            ssum[t] += ssum[t + k];
        }
        __syncthreads();
    }
    if (t == 0) {
        bmin[blockIdx.x] = smin[0];
        bsum[blockIdx.x] = ssum[0];
    }
}
