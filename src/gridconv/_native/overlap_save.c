/* 1-D convolution by overlap-save FFTs, eight tiles at a time, one per vector lane.
 *
 * torch's FFTs transform one tile at a time, and its ops make every stage a pass over memory
 * (the padded tiles, their spectra, the spectra frequency-major for a matmul, the products,
 * their inverse, the valid parts): at 4 x 8 x 65536 points each pass is 9 MB, more than the
 * caches keep between stages. Here eight tiles (of any images) go through every stage together
 * while they are in cache, and a 32-byte vector holds the same point of all eight, so each
 * FFT butterfly, each twiddle and each kernel coefficient serves eight tiles at once and no
 * instruction mixes lanes: the vectorisation is free of shuffles but at the two transposes
 * that bring tiles in and out.
 *
 * Per group of eight tiles ("lanes"):
 *   1. each input channel: the tiles' windows (length L = 2M, a power of two) transposed into
 *      lane order; a real FFT as an M-point complex FFT of (even, odd) pairs (Stockham, radix
 *      2), then split into the L/2 + 1 bins of the real spectrum;
 *   2. each output channel: the channel mixing, sum_c X_c[k] * W[o][k][c], for every bin;
 *      the inverse real FFT (merge, M-point complex FFT); the first `block` points of each
 *      tile, transposed back, written into place.
 * The 1/2 of the split, the 1/2 of the merge and the 1/M of the inverse are folded into W by
 * the caller (gridconv._native.pack): W = conj(rfft(w, L)) / (2L).
 *
 * The backward (gridconv_backward) takes the same tiles: one transform of each output
 * gradient tile serves both the input's gradient (times conj(W), inverted, overlap-added)
 * and the kernel's (conjugated, times the input tile's spectrum, summed over tiles).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));
typedef int32_t m8 __attribute__((vector_size(32)));
typedef struct { v8 re, im; } cv; /* eight complex numbers, one per lane */
enum { LANES = 8 };

/* Rows r[i] = 8 points of lane i  <->  r[j] = point j of the 8 lanes. */
static inline void transpose8(v8 r[8]) {
    const m8 lo = {0, 8, 1, 9, 4, 12, 5, 13}, hi = {2, 10, 3, 11, 6, 14, 7, 15};
    const m8 lo2 = {0, 1, 8, 9, 4, 5, 12, 13}, hi2 = {2, 3, 10, 11, 6, 7, 14, 15};
    const m8 lo4 = {0, 1, 2, 3, 8, 9, 10, 11}, hi4 = {4, 5, 6, 7, 12, 13, 14, 15};
    v8 t[8], s[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = __builtin_shuffle(r[i], r[i + 1], lo);
        t[i + 1] = __builtin_shuffle(r[i], r[i + 1], hi);
    }
    for (int i = 0; i < 8; i += 4) {
        s[i] = __builtin_shuffle(t[i], t[i + 2], lo2);
        s[i + 1] = __builtin_shuffle(t[i], t[i + 2], hi2);
        s[i + 2] = __builtin_shuffle(t[i + 1], t[i + 3], lo2);
        s[i + 3] = __builtin_shuffle(t[i + 1], t[i + 3], hi2);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = __builtin_shuffle(s[i], s[i + 4], lo4);
        r[i + 4] = __builtin_shuffle(s[i], s[i + 4], hi4);
    }
}

/* M-point complex FFT of x (Stockham autosort, radix 4, and one radix-2 stage when log2 M is
   odd; y is scratch); returns the buffer holding the result. Twiddles: tc[j] + i*ts[j] =
   exp(-2 pi i j / L) for j < L = 2M; the inverse (sign = +1) uses their conjugates.
   Unnormalised. */
static cv *fft(cv *x, cv *y, int64_t M, const float *tc, const float *ts, float sign) {
    const int64_t L = 2 * M;
    int64_t n = M, s = 1;
    for (; n >= 4; n /= 4, s *= 4) {
        const int64_t m = n / 4, step = L / n;
        for (int64_t p = 0; p < m; p++) {
            const float w1r = tc[p * step], w1i = sign * ts[p * step];
            const float w2r = tc[2 * p * step], w2i = sign * ts[2 * p * step];
            const float w3r = tc[3 * p * step], w3i = sign * ts[3 * p * step];
            const cv *a = x + s * p, *b = x + s * (p + m), *c = x + s * (p + 2 * m),
                     *d = x + s * (p + 3 * m);
            cv *y0 = y + s * 4 * p, *y1 = y0 + s, *y2 = y1 + s, *y3 = y2 + s;
            for (int64_t q = 0; q < s; q++) {
                const v8 pr = a[q].re + c[q].re, pi = a[q].im + c[q].im;
                const v8 mr = a[q].re - c[q].re, mi = a[q].im - c[q].im;
                const v8 qr = b[q].re + d[q].re, qi = b[q].im + d[q].im;
                /* j = sign * i * (b - d): forward -i (b - d), inverse +i (b - d) */
                const v8 jr = -sign * (b[q].im - d[q].im), ji = sign * (b[q].re - d[q].re);
                const v8 r1 = mr + jr, i1 = mi + ji, r2 = pr - qr, i2 = pi - qi;
                const v8 r3 = mr - jr, i3 = mi - ji;
                y0[q].re = pr + qr;
                y0[q].im = pi + qi;
                y1[q].re = r1 * w1r - i1 * w1i;
                y1[q].im = r1 * w1i + i1 * w1r;
                y2[q].re = r2 * w2r - i2 * w2i;
                y2[q].im = r2 * w2i + i2 * w2r;
                y3[q].re = r3 * w3r - i3 * w3i;
                y3[q].im = r3 * w3i + i3 * w3r;
            }
        }
        cv *t = x;
        x = y;
        y = t;
    }
    if (n == 2) { /* the last stage, radix 2: twiddle 1 */
        for (int64_t q = 0; q < s; q++) {
            const cv a = x[q], b = x[q + s];
            y[q].re = a.re + b.re, y[q].im = a.im + b.im;
            y[q + s].re = a.re - b.re, y[q + s].im = a.im - b.im;
        }
        return y;
    }
    return x;
}

/* The real spectra (L/2 + 1 bins, twice the true ones: the split's 1/2 is left out) of
   `channels` channels of eight tiles: channel c of lane i reads src[base[i] + c * plane + j],
   j < L, or, where `count` is given, j < count[i] with zeros after. `a`, `b`: 2 x M cvs of
   scratch. */
static void spectra8(const float *src, const int64_t *base, const int64_t *count,
                     int64_t channels, int64_t plane, int64_t M, const float *tc,
                     const float *ts, cv *a, cv *b, cv *X) {
    const int64_t L = 2 * M, F = M + 1;
    for (int64_t c = 0; c < channels; c++) {
        v8 *lanes = (v8 *)a; /* L points, lane order: the pairs (even, odd) are a's cvs */
        for (int64_t j = 0; j < L; j += 8) {
            v8 r[8];
            for (int i = 0; i < 8; i++) {
                const float *p = src + base[i] + c * plane + j;
                if (count == NULL || j + 8 <= count[i]) r[i] = *(const v8u *)p;
                else {
                    v8 v = {0};
                    for (int64_t e = j; e < count[i]; e++) v[e - j] = p[e - j];
                    r[i] = v;
                }
            }
            transpose8(r);
            for (int i = 0; i < 8; i++) lanes[j + i] = r[i];
        }
        const cv *z = fft(a, b, M, tc, ts, -1.0f);
        cv *Xc = X + c * F;
        for (int64_t k = 0; k <= M; k++) { /* split: X = (A + B) - i T (A - B), B = conj Z[M-k] */
            const cv A = z[k < M ? k : 0], Bc = z[k > 0 ? M - k : 0];
            const v8 sr = A.re + Bc.re, si = A.im - Bc.im, dr = A.re - Bc.re, di = A.im + Bc.im;
            const float tr = tc[k], ti = -ts[k];
            Xc[k].re = sr + (tr * di + ti * dr);
            Xc[k].im = si - (tr * dr - ti * di);
        }
    }
}

/* The inverse of eight tiles' half spectra Y (M + 1 bins, scaled as W is, see the top):
   the merge into an M-point complex spectrum, then its FFT. Returns the L points in lane
   order (point j of lane i is [j][i]), in a or b. */
static const v8 *inverse8(const cv *Y, int64_t M, const float *tc, const float *ts, cv *a,
                          cv *b) {
    for (int64_t k = 0; k < M; k++) { /* merge: Z = (A + B) + i conj(T) (A - B) */
        const cv A = Y[k], Bc = Y[M - k];
        const v8 sr = A.re + Bc.re, si = A.im - Bc.im, dr = A.re - Bc.re, di = A.im + Bc.im;
        const float tr = tc[k], ti = ts[k]; /* conj(T) = (cos, +sin) */
        const v8 ur = tr * dr - ti * di, ui = tr * di + ti * dr;
        a[k].re = sr - ui;
        a[k].im = si + ur;
    }
    return (const v8 *)fft(a, b, M, tc, ts, 1.0f);
}

/* Points [first, end[i]) of lane i of y (lane order, L points) to dst[i][0 ..]. */
static void store8(const v8 *y, float *const dst[8], int64_t first, const int64_t *end,
                   int64_t L) {
    for (int64_t j = first / 8 * 8; j < L; j += 8) {
        int done = 1;
        for (int i = 0; i < 8; i++) done &= end[i] <= j;
        if (done) break;
        v8 r[8];
        for (int i = 0; i < 8; i++) r[i] = y[j + i];
        transpose8(r);
        for (int i = 0; i < 8; i++) {
            float *d = dst[i] + j - first;
            if (j >= first && j + 8 <= end[i]) *(v8u *)d = r[i];
            else
                for (int64_t e = j > first ? j : first; e < end[i] && e < j + 8; e++)
                    d[e - j] = r[i][e - j];
        }
    }
}

/* One group of eight tiles; `ws` is this thread's workspace. */
static void tiles8(const float *x, const float *w, float *out, const int64_t *base,
                   const int64_t *dest, const int64_t *count, int64_t C, int64_t O,
                   int64_t Cg, int64_t Og, int64_t M, int64_t plane_in, int64_t plane_out,
                   const float *tc, const float *ts, cv *ws) {
    const int64_t L = 2 * M, F = M + 1;
    cv *a = ws, *b = ws + M, *X = ws + 2 * M, *Y = X + C * F; /* Y: 4 channels */
    spectra8(x, base, NULL, C, plane_in, M, tc, ts, a, b, X);
    const int64_t blocks = (Og + 3) / 4; /* output channels four at a time */
    for (int64_t ob = 0; ob < O / Og * blocks; ob++) {
        const int64_t g = ob / blocks, o0 = ob % blocks * 4;
        const cv *Xg = X + g * Cg * F;
        const float *wb = w + ob * F * Cg * 8;
        for (int64_t k = 0; k < F; k++) { /* Y_o[k] = sum_c X_c[k] W[o][k][c], o = o0 .. o0+3 */
            v8 r0 = {0}, i0 = {0}, r1 = {0}, i1 = {0}, r2 = {0}, i2 = {0}, r3 = {0}, i3 = {0};
            const float *wk = wb + k * Cg * 8;
            for (int64_t c = 0; c < Cg; c++) {
                const v8 xr = Xg[c * F + k].re, xi = Xg[c * F + k].im;
                const float *wc = wk + c * 8;
                r0 += xr * wc[0] - xi * wc[1], i0 += xr * wc[1] + xi * wc[0];
                r1 += xr * wc[2] - xi * wc[3], i1 += xr * wc[3] + xi * wc[2];
                r2 += xr * wc[4] - xi * wc[5], i2 += xr * wc[5] + xi * wc[4];
                r3 += xr * wc[6] - xi * wc[7], i3 += xr * wc[7] + xi * wc[6];
            }
            Y[k].re = r0, Y[k].im = i0, Y[F + k].re = r1, Y[F + k].im = i1;
            Y[2 * F + k].re = r2, Y[2 * F + k].im = i2, Y[3 * F + k].re = r3, Y[3 * F + k].im = i3;
        }
        for (int64_t e = 0; e < 4 && o0 + e < Og; e++) {
            const int64_t o = g * Og + o0 + e;
            float *dst[8];
            for (int i = 0; i < 8; i++) dst[i] = out + dest[i] + o * plane_out;
            store8(inverse8(Y + e * F, M, tc, ts, a, b), dst, 0, count, L);
        }
    }
}

/* cos and sin of 2 pi j / L, j < L, one after the other in one allocation (free it). */
static float *twiddles(int64_t L) {
    float *t = malloc(sizeof(float) * 2 * L);
    if (t == NULL) return NULL;
    for (int64_t j = 0; j < L; j++) {
        t[j] = (float)cos(2.0 * M_PI * (double)j / (double)L);
        t[L + j] = (float)sin(2.0 * M_PI * (double)j / (double)L);
    }
    return t;
}

/* x: the padded input, (N, C, row_in) float, tile t of image n reading x[n, c, t*block :
   t*block + L]; w: (O, M + 1, Cg, 2) float, see above; out: (N, O, valid), tile t writing
   out[n, o, t*block : min((t+1)*block, valid)]. L = 2M must be a power of two >= 16. */
int gridconv_overlap_save(const float *x, const float *w, float *out, int64_t N, int64_t C,
                          int64_t O, int64_t groups, int64_t row_in, int64_t tiles,
                          int64_t block, int64_t L, int64_t valid) {
    const int64_t M = L / 2, F = M + 1, Cg = C / groups, Og = O / groups;
    float *tc = twiddles(L), *ts = tc + L;
    if (tc == NULL) return 1;
    const int64_t rows = N * tiles, groups8 = (rows + LANES - 1) / LANES;
    const size_t bytes = sizeof(cv) * (size_t)(2 * M + (C + 4) * F);
    int failed = 0;
#pragma omp parallel
    {
        cv *ws = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (ws == NULL) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t g = 0; g < groups8; g++) {
            if (ws == NULL) continue;
            int64_t base[LANES], dest[LANES], count[LANES];
            for (int i = 0; i < LANES; i++) {
                const int64_t r = g * LANES + i < rows ? g * LANES + i : rows - 1;
                const int64_t n = r / tiles, t = r % tiles, left = valid - t * block;
                base[i] = n * C * row_in + t * block;
                dest[i] = n * O * valid + t * block;
                count[i] = g * LANES + i < rows ? (left < block ? left : block) : 0;
            }
            tiles8(x, w, out, base, dest, count, C, O, Cg, Og, M, row_in, valid, tc, ts, ws);
        }
        free(ws);
    }
    free(tc);
    return failed;
}

/* Both gradients of gridconv_overlap_save, from the output gradient g: (N, O, valid) (tile t
   of image n holding g[n, o, t*block : min((t+1)*block, valid)], zeros after), with the
   spectra G of its tiles taken once for both.
   - gx (unless NULL): the padded input's gradient, (N, C, row_in), row_in >= tiles * block +
     L - block. Per tile, sum_o G_o[k] conj(W[o][k][c]) inverted is the tile's share by
     overlap-add: its first `block` points go to gx[n, c, t*block ..], the other L - block to
     `tail`, then a second pass adds them at gx[n, c, (t+1)*block ..] (L - block <= block, so
     neither pass has two threads write a point).
   - gw (unless NULL): the kernel gradient's spectra, gw[g][k][o][c] (complex, (groups, M + 1,
     Og, Cg, 2) float, zeroed by the caller) += sum over tiles of conj(G_o[k]) X_c[k], X the
     spectra of the input's tiles as gridconv_overlap_save reads them; four times the true
     sums (both spectra are twice the true ones). The first L - block + 1 points of their
     inverse are the gradient of the kernel's taps: a tile's gradient points meet input points
     at most block - 1 + L - block places on, so no product wraps around. Each thread sums
     its tiles lane by lane, in (groups, M + 1, Og, Cg) x 8 lanes, then adds its lanes into
     gw, one thread at a time.
   w is the forward's packed kernel (needed for gx only), x its padded input (for gw only). */
int gridconv_backward(const float *x, const float *g, const float *w, float *gx, float *gw,
                      int64_t N, int64_t C, int64_t O, int64_t groups, int64_t row_in,
                      int64_t tiles, int64_t block, int64_t L, int64_t valid) {
    const int64_t M = L / 2, F = M + 1, Cg = C / groups, Og = O / groups, T = L - block;
    const int64_t pairs = gw != NULL ? groups * F * Og * Cg : 0;
    const int64_t rows = N * tiles, groups8 = (rows + LANES - 1) / LANES;
    float *tc = twiddles(L), *ts = tc + L;
    float *tail = gx != NULL && T > 0 ? malloc(sizeof(float) * (size_t)(rows * C * T)) : NULL;
    if (tc == NULL || (gx != NULL && T > 0 && tail == NULL)) {
        free(tc);
        return 1;
    }
    const size_t bytes = sizeof(cv) * (size_t)(2 * M + (C + O) * F + pairs);
    int failed = 0;
#pragma omp parallel
    {
        cv *ws = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (ws == NULL) {
#pragma omp atomic write
            failed = 1;
        }
        cv *a = ws, *b = ws + M, *X = ws + 2 * M, *G = X + C * F, *acc = G + O * F;
        if (ws != NULL) memset(acc, 0, sizeof(cv) * (size_t)pairs);
#pragma omp for schedule(static)
        for (int64_t q = 0; q < groups8; q++) {
            if (ws == NULL) continue;
            int64_t base[LANES], gbase[LANES], count[LANES], main[LANES], end[LANES];
            for (int i = 0; i < LANES; i++) {
                const int r = q * LANES + i < rows, row = r ? q * LANES + i : rows - 1;
                const int64_t n = row / tiles, t = row % tiles, left = valid - t * block;
                base[i] = n * C * row_in + t * block;
                gbase[i] = n * O * valid + t * block;
                count[i] = r ? (left < block ? left : block) : 0;
                main[i] = r ? block : 0;
                end[i] = r ? L : block;
            }
            spectra8(g, gbase, count, O, valid, M, tc, ts, a, b, G);
            if (gw != NULL) {
                spectra8(x, base, NULL, C, row_in, M, tc, ts, a, b, X);
                for (int64_t h = 0; h < groups; h++) {
                    const cv *Xh = X + h * Cg * F, *Gh = G + h * Og * F;
                    for (int64_t k = 0; k < F; k++) { /* acc[h][k][o][c] += conj(G_o) X_c */
                        cv *s = acc + (h * F + k) * Og * Cg;
                        for (int64_t o = 0; o < Og; o++) {
                            const v8 gr = Gh[o * F + k].re, gi = Gh[o * F + k].im;
                            for (int64_t c = 0; c < Cg; c++) {
                                const v8 xr = Xh[c * F + k].re, xi = Xh[c * F + k].im;
                                s[o * Cg + c].re += gr * xr + gi * xi;
                                s[o * Cg + c].im += gr * xi - gi * xr;
                            }
                        }
                    }
                }
            }
            if (gx == NULL) continue;
            /* X (no longer needed) takes the input gradient's spectra:
               X_c[k] = sum_o G_o[k] conj(W[o][k][c]), W packed (G, ceil(Og/4), F, Cg, 4, 2) */
            const int64_t blocks = (Og + 3) / 4; /* output channels four at a time */
            for (int64_t h = 0; h < groups; h++) {
                for (int64_t k = 0; k < F; k++) {
                    for (int64_t ob = 0; ob < blocks; ob++) {
                        cv g4[4];
                        for (int e = 0; e < 4; e++) {
                            const int64_t o = ob * 4 + e;
                            const cv zero = {{0}, {0}};
                            g4[e] = o < Og ? G[(h * Og + o) * F + k] : zero;
                        }
                        const float *wk = w + ((h * blocks + ob) * F + k) * Cg * 8;
                        for (int64_t c = 0; c < Cg; c++) {
                            cv *Y = X + (h * Cg + c) * F + k;
                            v8 re = {0}, im = {0};
                            if (ob > 0) re = Y->re, im = Y->im;
                            const float *wc = wk + c * 8;
                            for (int e = 0; e < 4; e++) {
                                re += g4[e].re * wc[2 * e] + g4[e].im * wc[2 * e + 1];
                                im += g4[e].im * wc[2 * e] - g4[e].re * wc[2 * e + 1];
                            }
                            Y->re = re, Y->im = im;
                        }
                    }
                }
            }
            for (int64_t c = 0; c < C; c++) {
                float *dst[8], *rest[8];
                for (int i = 0; i < 8; i++) {
                    const int64_t row = q * LANES + i < rows ? q * LANES + i : 0;
                    dst[i] = gx + base[i] + c * row_in;
                    rest[i] = tail + (row * C + c) * T;
                }
                const v8 *y = inverse8(X + c * F, M, tc, ts, a, b);
                store8(y, dst, 0, main, L);
                if (T > 0) store8(y, rest, block, end, L);
            }
        }
        if (ws != NULL && gw != NULL) {
#pragma omp critical
            for (int64_t p = 0; p < pairs; p++) {
                float re = 0, im = 0;
                for (int i = 0; i < LANES; i++) re += acc[p].re[i], im += acc[p].im[i];
                gw[2 * p] += re;
                gw[2 * p + 1] += im;
            }
        }
        free(ws);
        if (gx != NULL) { /* the tails, added one tile on; the last tile's set, then zeros */
#pragma omp barrier
#pragma omp for schedule(static)
            for (int64_t r = 0; r < N * C; r++) {
                const int64_t n = r / C, c = r % C;
                float *row = gx + r * row_in;
                for (int64_t t = 0; t < tiles; t++) {
                    const float *from = tail + ((n * tiles + t) * C + c) * T;
                    float *to = row + (t + 1) * block;
                    if (t + 1 < tiles)
                        for (int64_t j = 0; j < T; j++) to[j] += from[j];
                    else
                        for (int64_t j = 0; j < T; j++) to[j] = from[j];
                }
                for (int64_t j = tiles * block + T; j < row_in; j++) row[j] = 0;
            }
        }
    }
    free(tail);
    free(tc);
    return failed;
}
