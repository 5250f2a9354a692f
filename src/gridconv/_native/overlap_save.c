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
 * the caller (gridconv._native.pack_overlap_save): W = conj(rfft(w, L)) / (2L).
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

/* One group of eight tiles; `ws` is this thread's workspace. */
static void tiles8(const float *x, const float *w, float *out, const int64_t *base,
                   const int64_t *dest, const int64_t *count, int64_t C, int64_t O,
                   int64_t Cg, int64_t Og, int64_t M, int64_t plane_in, int64_t plane_out,
                   const float *tc, const float *ts, cv *ws) {
    const int64_t L = 2 * M, F = M + 1;
    cv *a = ws, *b = ws + M, *X = ws + 2 * M, *Y = X + C * F; /* Y: 4 channels */
    for (int64_t c = 0; c < C; c++) {
        v8 *lanes = (v8 *)a; /* L points, lane order: the pairs (even, odd) are a's cvs */
        for (int64_t j = 0; j < L; j += 8) {
            v8 r[8];
            for (int i = 0; i < 8; i++) r[i] = *(const v8u *)(x + base[i] + c * plane_in + j);
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
        const cv *Yo = Y + e * F;
        for (int64_t k2 = 0; k2 < M; k2++) { /* merge: Z = (A + B) + i conj(T) (A - B) */
            const cv A = Yo[k2], Bc = Yo[M - k2];
            const v8 sr = A.re + Bc.re, si = A.im - Bc.im, dr = A.re - Bc.re, di = A.im + Bc.im;
            const float tr = tc[k2], ti = ts[k2]; /* conj(T) = (cos, +sin) */
            const v8 ur = tr * dr - ti * di, ui = tr * di + ti * dr;
            a[k2].re = sr - ui;
            a[k2].im = si + ur;
        }
        const v8 *y = (const v8 *)fft(a, b, M, tc, ts, 1.0f); /* L points, lane order */
        for (int64_t j = 0; j < L; j += 8) {
            int done = 1;
            for (int i = 0; i < 8; i++) done &= count[i] <= j;
            if (done) break;
            v8 r[8];
            for (int i = 0; i < 8; i++) r[i] = y[j + i];
            transpose8(r);
            for (int i = 0; i < 8; i++) {
                float *dst = out + dest[i] + o * plane_out + j;
                if (j + 8 <= count[i]) *(v8u *)dst = r[i];
                else
                    for (int64_t e = j; e < count[i]; e++) dst[e - j] = r[i][e - j];
            }
        }
        }
    }
}

/* x: the padded input, (N, C, row_in) float, tile t of image n reading x[n, c, t*block :
   t*block + L]; w: (O, M + 1, Cg, 2) float, see above; out: (N, O, valid), tile t writing
   out[n, o, t*block : min((t+1)*block, valid)]. L = 2M must be a power of two >= 16. */
int gridconv_overlap_save(const float *x, const float *w, float *out, int64_t N, int64_t C,
                          int64_t O, int64_t groups, int64_t row_in, int64_t tiles,
                          int64_t block, int64_t L, int64_t valid) {
    const int64_t M = L / 2, F = M + 1, Cg = C / groups, Og = O / groups;
    float *tc = malloc(sizeof(float) * 2 * L), *ts = tc + L;
    if (tc == NULL) return 1;
    for (int64_t j = 0; j < L; j++) {
        tc[j] = (float)cos(2.0 * M_PI * (double)j / (double)L);
        ts[j] = (float)sin(2.0 * M_PI * (double)j / (double)L);
    }
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
