/* The hot loops of the SPC passes (quality/passes.py), one block of points per call, the GIL
 * released for the whole block so that both cores work at once.
 *
 * Written by hand because no library fuses them: numpy takes one operation per pass over a block,
 * so a block of 2^18 points streams through the cache ten times for the run rules' comparisons and
 * six for capability's moments, and the two threads of a pass trade the GIL between those
 * operations. Here each point is read once. The results are those of the numpy code beside each
 * call (rules.Scan.block, charts._moving_ranges, capability._moments), which runs where this
 * module was not built; tests run both and compare them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AVX2_PATH 1
#endif

/* Sums: LANE points at a time in four plain partial sums, the lane totals added with Neumaier's
 * compensation, which keeps the error at numpy's pairwise-sum level. */
#define LANE 256

typedef struct {
    double s, c;
} Sum;

static inline void add(Sum *t, double v) {
    double s = t->s + v;
    t->c += fabs(t->s) >= fabs(v) ? (t->s - s) + v : (v - s) + t->s;
    t->s = s;
}

static inline double total(const Sum *t) { return t->s + t->c; }

/* A C-contiguous buffer of 8-byte items: doubles (format "d") where `doubles`, else words. */
static int take(PyObject *o, Py_buffer *b, int writable, int doubles, const char *what) {
    if (PyObject_GetBuffer(o, b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    size_t len = b->format ? strlen(b->format) : 0;
    if (b->itemsize != 8 || (doubles && (len == 0 || b->format[len - 1] != 'd'))) {
        PyErr_Format(PyExc_TypeError, "%s: %s expected", what, doubles ? "float64 values" : "8-byte words");
        PyBuffer_Release(b);
        return -1;
    }
    return 0;
}

/* ---- run rules' comparisons ------------------------------------------------------------------ */

#ifdef AVX2_PATH
/* 64 points, 4 at a time: each comparison's 4-lane mask is 4 bits of its word. Rows: above
 * upper[k] for each of nu boundaries, below lower[k] for each of nl, then rising and falling if
 * moves; p[-1] must exist when moves. NaN compares false, as in numpy. */
__attribute__((target("avx2"))) static void word_avx2(const double *p, Py_ssize_t nu, const double *u, Py_ssize_t nl,
                                                       const double *l, int moves, uint64_t *acc) {
#define BITS(c) ((uint64_t)_mm256_movemask_pd(c) << j)
    if (nu == 4 && nl == 4 && moves) { /* the Nelson set: every accumulator in a register */
        __m256d u0 = _mm256_set1_pd(u[0]), u1 = _mm256_set1_pd(u[1]), u2 = _mm256_set1_pd(u[2]),
                u3 = _mm256_set1_pd(u[3]), l0 = _mm256_set1_pd(l[0]), l1 = _mm256_set1_pd(l[1]),
                l2 = _mm256_set1_pd(l[2]), l3 = _mm256_set1_pd(l[3]);
        uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0, r = 0, f = 0;
        for (int j = 0; j < 64; j += 4) {
            __m256d v = _mm256_loadu_pd(p + j), q = _mm256_loadu_pd(p + j - 1);
            a0 |= BITS(_mm256_cmp_pd(v, u0, _CMP_GT_OQ));
            a1 |= BITS(_mm256_cmp_pd(v, u1, _CMP_GT_OQ));
            a2 |= BITS(_mm256_cmp_pd(v, u2, _CMP_GT_OQ));
            a3 |= BITS(_mm256_cmp_pd(v, u3, _CMP_GT_OQ));
            b0 |= BITS(_mm256_cmp_pd(v, l0, _CMP_LT_OQ));
            b1 |= BITS(_mm256_cmp_pd(v, l1, _CMP_LT_OQ));
            b2 |= BITS(_mm256_cmp_pd(v, l2, _CMP_LT_OQ));
            b3 |= BITS(_mm256_cmp_pd(v, l3, _CMP_LT_OQ));
            r |= BITS(_mm256_cmp_pd(v, q, _CMP_GT_OQ));
            f |= BITS(_mm256_cmp_pd(v, q, _CMP_LT_OQ));
        }
        uint64_t out[10] = {a0, a1, a2, a3, b0, b1, b2, b3, r, f};
        memcpy(acc, out, sizeof out);
        return;
    }
    for (Py_ssize_t k = 0; k < nu + nl + 2; k++) acc[k] = 0;
    for (int j = 0; j < 64; j += 4) {
        __m256d v = _mm256_loadu_pd(p + j);
        for (Py_ssize_t k = 0; k < nu; k++) acc[k] |= BITS(_mm256_cmp_pd(v, _mm256_set1_pd(u[k]), _CMP_GT_OQ));
        for (Py_ssize_t k = 0; k < nl; k++) acc[nu + k] |= BITS(_mm256_cmp_pd(v, _mm256_set1_pd(l[k]), _CMP_LT_OQ));
        if (moves) {
            __m256d q = _mm256_loadu_pd(p + j - 1);
            acc[nu + nl] |= BITS(_mm256_cmp_pd(v, q, _CMP_GT_OQ));
            acc[nu + nl + 1] |= BITS(_mm256_cmp_pd(v, q, _CMP_LT_OQ));
        }
    }
#undef BITS
}
#endif

/* The same for m <= 64 points, one at a time: the series' first word and its last. */
static void word_plain(const double *p, int m, int first, Py_ssize_t nu, const double *u, Py_ssize_t nl,
                       const double *l, int moves, uint64_t *acc) {
    for (Py_ssize_t k = 0; k < nu + nl + 2; k++) acc[k] = 0;
    for (int j = 0; j < m; j++) {
        for (Py_ssize_t k = 0; k < nu; k++) acc[k] |= (uint64_t)(p[j] > u[k]) << j;
        for (Py_ssize_t k = 0; k < nl; k++) acc[nu + k] |= (uint64_t)(p[j] < l[k]) << j;
        if (moves && (j > 0 || !first)) {
            acc[nu + nl] |= (uint64_t)(p[j] > p[j - 1]) << j;
            acc[nu + nl + 1] |= (uint64_t)(p[j] < p[j - 1]) << j;
        }
    }
}

/* flags(x, start, stop, upper, lower, packed, moves) -> bool: set the words of points start ...
 * stop - 1 (start a multiple of 64) in every row of packed (rows x words, row-major): x above each
 * of upper (up to 8), below each of lower (up to 8), then rising and falling if moves. False, and
 * nothing written, where this processor lacks AVX2: the caller's numpy code is as fast there. */
static PyObject *flags(PyObject *self, PyObject *args) {
    PyObject *xo, *uo, *lo, *po;
    Py_ssize_t start, stop;
    int moves;
    if (!PyArg_ParseTuple(args, "OnnOOOp", &xo, &start, &stop, &uo, &lo, &po, &moves)) return NULL;
#ifdef AVX2_PATH
    if (!__builtin_cpu_supports("avx2")) Py_RETURN_FALSE;
    Py_buffer x, up, low, pk;
    if (take(xo, &x, 0, 1, "x") < 0) return NULL;
    if (take(uo, &up, 0, 1, "upper") < 0) goto free_x;
    if (take(lo, &low, 0, 1, "lower") < 0) goto free_up;
    if (take(po, &pk, 1, 0, "packed") < 0) goto free_low;
    Py_ssize_t n = x.len / 8, nu = up.len / 8, nl = low.len / 8, rows = nu + nl + (moves ? 2 : 0);
    Py_ssize_t words = rows ? pk.len / 8 / rows : 0;
    if (start < 0 || start % 64 || start > stop || stop > n || nu > 8 || nl > 8 || rows == 0 ||
        (stop + 63) / 64 > words) {
        PyErr_SetString(PyExc_ValueError, "flags: the block, the boundaries or the packed rows do not fit");
        goto free_all;
    }
    const double *xv = x.buf, *u = up.buf, *l = low.buf;
    uint64_t *out = pk.buf;
    Py_BEGIN_ALLOW_THREADS
    uint64_t acc[18];
    for (Py_ssize_t w = start / 64; w < (stop + 63) / 64; w++) {
        const double *p = xv + w * 64;
        int m = stop - w * 64 < 64 ? (int)(stop - w * 64) : 64;
        if (m == 64 && w > 0)
            word_avx2(p, nu, u, nl, l, moves, acc);
        else
            word_plain(p, m, w == 0, nu, u, nl, l, moves, acc);
        for (Py_ssize_t r = 0; r < rows; r++) out[r * words + w] = acc[r];
    }
    Py_END_ALLOW_THREADS
free_all:
    PyBuffer_Release(&pk);
free_low:
    PyBuffer_Release(&low);
free_up:
    PyBuffer_Release(&up);
free_x:
    PyBuffer_Release(&x);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_TRUE;
#else
    Py_RETURN_FALSE;
#endif
}

/* ---- moving ranges ----------------------------------------------------------------------------- */

/* ranges(x, start, stop, mr) -> (Σ x[start:stop], Σ mr[max(start, 1):stop]), writing
 * mr[i] = |x[i] - x[i - 1]| for i from max(start, 1) to stop - 1. */
static PyObject *ranges(PyObject *self, PyObject *args) {
    PyObject *xo, *mo;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "OnnO", &xo, &start, &stop, &mo)) return NULL;
    Py_buffer x, mr;
    if (take(xo, &x, 0, 1, "x") < 0) return NULL;
    if (take(mo, &mr, 1, 1, "mr") < 0) {
        PyBuffer_Release(&x);
        return NULL;
    }
    if (start < 0 || start > stop || stop > x.len / 8 || mr.len != x.len) {
        PyBuffer_Release(&x);
        PyBuffer_Release(&mr);
        PyErr_SetString(PyExc_ValueError, "ranges: the block or the output does not fit");
        return NULL;
    }
    const double *xv = x.buf;
    double *out = mr.buf;
    Sum sx = {0, 0}, sm = {0, 0};
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t a = start; a < stop; a += LANE) {
        Py_ssize_t b = a + LANE < stop ? a + LANE : stop, i = a;
        double t[4] = {0}, m[4] = {0};
        for (; i + 4 <= b; i += 4)
            for (int k = 0; k < 4; k++) t[k] += xv[i + k];
        for (; i < b; i++) t[0] += xv[i];
        add(&sx, (t[0] + t[1]) + (t[2] + t[3]));
        i = a > 0 ? a : 1;
        for (; i + 4 <= b; i += 4)
            for (int k = 0; k < 4; k++) m[k] += out[i + k] = fabs(xv[i + k] - xv[i + k - 1]);
        for (; i < b; i++) m[0] += out[i] = fabs(xv[i] - xv[i - 1]);
        add(&sm, (m[0] + m[1]) + (m[2] + m[3]));
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&x);
    PyBuffer_Release(&mr);
    return Py_BuildValue("dd", total(&sx), total(&sm));
}

/* ---- capability's moments ---------------------------------------------------------------------- */

/* moments(x, start, stop, shift, lsl, usl, steps) -> (Σd, Σd², Σd³, Σd⁴, Σ|x[i] - x[i - 1]|, below,
 * above) over the block, d = x - shift; the steps only when asked; below counts x < lsl and above
 * x > usl (a NaN limit counts nothing). */
static PyObject *moments(PyObject *self, PyObject *args) {
    PyObject *xo;
    Py_ssize_t start, stop;
    double shift, lsl, usl;
    int steps;
    if (!PyArg_ParseTuple(args, "Onndddp", &xo, &start, &stop, &shift, &lsl, &usl, &steps)) return NULL;
    Py_buffer x;
    if (take(xo, &x, 0, 1, "x") < 0) return NULL;
    if (start < 0 || start > stop || stop > x.len / 8) {
        PyBuffer_Release(&x);
        PyErr_SetString(PyExc_ValueError, "moments: the block does not fit");
        return NULL;
    }
    const double *xv = x.buf;
    Sum s1 = {0, 0}, s2 = {0, 0}, s3 = {0, 0}, s4 = {0, 0}, st = {0, 0};
    Py_ssize_t below = 0, above = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t a = start; a < stop; a += LANE) {
        Py_ssize_t b = a + LANE < stop ? a + LANE : stop, i = a, lo = 0, hi = 0;
        double p1[4] = {0}, p2[4] = {0}, p3[4] = {0}, p4[4] = {0}, ps[4] = {0};
        for (; i + 4 <= b; i += 4)
            for (int k = 0; k < 4; k++) {
                double v = xv[i + k], d = v - shift, dd = d * d;
                p1[k] += d;
                p2[k] += dd;
                p3[k] += dd * d;
                p4[k] += dd * dd;
                lo += v < lsl;
                hi += v > usl;
            }
        for (; i < b; i++) {
            double v = xv[i], d = v - shift, dd = d * d;
            p1[0] += d;
            p2[0] += dd;
            p3[0] += dd * d;
            p4[0] += dd * dd;
            lo += v < lsl;
            hi += v > usl;
        }
        add(&s1, (p1[0] + p1[1]) + (p1[2] + p1[3]));
        add(&s2, (p2[0] + p2[1]) + (p2[2] + p2[3]));
        add(&s3, (p3[0] + p3[1]) + (p3[2] + p3[3]));
        add(&s4, (p4[0] + p4[1]) + (p4[2] + p4[3]));
        if (steps) {
            for (i = a > 0 ? a : 1; i + 4 <= b; i += 4)
                for (int k = 0; k < 4; k++) ps[k] += fabs(xv[i + k] - xv[i + k - 1]);
            for (; i < b; i++) ps[0] += fabs(xv[i] - xv[i - 1]);
            add(&st, (ps[0] + ps[1]) + (ps[2] + ps[3]));
        }
        below += lo;
        above += hi;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&x);
    return Py_BuildValue("dddddnn", total(&s1), total(&s2), total(&s3), total(&s4), total(&st), below, above);
}

static PyMethodDef methods[] = {
    {"flags", flags, METH_VARARGS, "Pack the run rules' comparisons of a block of points (True if done)."},
    {"ranges", ranges, METH_VARARGS, "Moving ranges of a block, with the sums of the values and of the ranges."},
    {"moments", moments, METH_VARARGS, "Power sums about a shift, the steps and the spec-limit counts of a block."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "qdsn.quality._kernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
