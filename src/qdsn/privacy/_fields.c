/* Field64 and Field128 arithmetic for Prio3's FLP (privacy/flp.py, privacy/field.py): the number
 * theoretic transform, Lagrange-basis evaluation and inner products, on lists of Python ints; and
 * TurboSHAKE128, the XOF of xof.py.
 *
 * Written by hand because in Python each product of two field elements is a big-integer
 * multiplication and division (a few hundred nanoseconds), and a Prio3 report spends most of its
 * arithmetic there; numpy has no 128-bit (let alone 256-bit) product to reduce. The Python code
 * beside each call (field._ntt, flp.poly_eval_batched, flp.extend_values_to_power_of_2) runs where
 * this module was not built, and gives the same elements; tests run both and compare them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define P 0xFFFFFFFF00000001ULL /* 2^64 - 2^32 + 1 */

static inline uint64_t mul(uint64_t a, uint64_t b) { return (uint64_t)(((unsigned __int128)a * b) % P); }
static inline uint64_t add(uint64_t a, uint64_t b) {
    uint64_t s = a + b;
    return (s < a || s >= P) ? s - P : s; /* a, b < P: one subtraction suffices, wrapping included */
}
static inline uint64_t sub(uint64_t a, uint64_t b) { return a >= b ? a - b : a + (P - b); }

/* A list of ints, each below P, into a fresh array of n (NULL with an exception set otherwise). */
static uint64_t *take(PyObject *seq, Py_ssize_t *n, const char *what) {
    PyObject *fast = PySequence_Fast(seq, what);
    if (!fast) return NULL;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(fast);
    uint64_t *out = PyMem_Malloc((len ? len : 1) * sizeof(uint64_t));
    if (!out) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return NULL;
    }
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned long long v = PyLong_AsUnsignedLongLong(items[i]);
        if ((v == (unsigned long long)-1 && PyErr_Occurred()) || v >= P) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "%s: an element is not below the modulus", what);
            PyMem_Free(out);
            Py_DECREF(fast);
            return NULL;
        }
        out[i] = v;
    }
    Py_DECREF(fast);
    *n = len;
    return out;
}

static PyObject *give(const uint64_t *a, Py_ssize_t n) {
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(a[i]);
        if (!v) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, v);
    }
    return list;
}

/* ntt(a, roots): a(roots[i]) for i < n = len(a), a power of two, roots[i] = w^i for an n-th root w. */
static PyObject *ntt(PyObject *self, PyObject *args) {
    PyObject *pa, *pr;
    if (!PyArg_ParseTuple(args, "OO", &pa, &pr)) return NULL;
    Py_ssize_t n, nr;
    uint64_t *a = take(pa, &n, "ntt values");
    if (!a) return NULL;
    uint64_t *roots = take(pr, &nr, "ntt roots");
    if (!roots) {
        PyMem_Free(a);
        return NULL;
    }
    if (n == 0 || (n & (n - 1)) || nr < n) {
        PyMem_Free(a);
        PyMem_Free(roots);
        return PyErr_Format(PyExc_ValueError, "ntt: the length must be a power of two with as many roots");
    }
    for (Py_ssize_t i = 1, j = 0; i < n; i++) { /* bit-reversal permutation */
        Py_ssize_t bit = n >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            uint64_t t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
    }
    for (Py_ssize_t half = 1; half < n; half <<= 1) {
        Py_ssize_t stride = n / (2 * half);
        for (Py_ssize_t start = 0; start < n; start += 2 * half)
            for (Py_ssize_t j = 0; j < half; j++) {
                uint64_t u = a[start + j], v = mul(a[start + j + half], roots[j * stride]);
                a[start + j] = add(u, v);
                a[start + j + half] = sub(u, v);
            }
    }
    PyObject *out = give(a, n);
    PyMem_Free(a);
    PyMem_Free(roots);
    return out;
}

/* eval_batched(polys, nodes, x, factor): each poly (n values at nodes) evaluated at x, as the draft's
 * Lagrange.poly_eval_batched: the weights k_i·node_i·Π_{j>i}(node_j − x) shared by all polys. */
static PyObject *eval_batched(PyObject *self, PyObject *args) {
    PyObject *ppolys, *pnodes;
    unsigned long long x, factor;
    if (!PyArg_ParseTuple(args, "OOKK", &ppolys, &pnodes, &x, &factor)) return NULL;
    if (x >= P || factor >= P) return PyErr_Format(PyExc_ValueError, "eval_batched: x is not below the modulus");
    Py_ssize_t n;
    uint64_t *nodes = take(pnodes, &n, "eval_batched nodes");
    if (!nodes) return NULL;
    uint64_t *w = PyMem_Malloc((n ? n : 1) * sizeof(uint64_t));
    PyObject *polys = PySequence_Fast(ppolys, "eval_batched polys");
    if (!w || !polys) {
        PyMem_Free(nodes);
        PyMem_Free(w);
        Py_XDECREF(polys);
        return w ? NULL : PyErr_NoMemory();
    }
    uint64_t k = 1, suffix = 1;
    for (Py_ssize_t i = 1; i < n; i++) {
        k = mul(k, sub(nodes[i - 1], x));
        w[i] = mul(k, nodes[i]);
    }
    for (Py_ssize_t i = n - 1; i > 0; i--) {
        w[i] = mul(w[i], suffix);
        suffix = mul(suffix, sub(nodes[i], x));
    }
    if (n) w[0] = suffix;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(polys);
    PyObject *out = PyList_New(count);
    for (Py_ssize_t j = 0; out && j < count; j++) {
        Py_ssize_t len;
        uint64_t *p = take(PySequence_Fast_GET_ITEM(polys, j), &len, "eval_batched poly");
        if (!p || len > n) {
            if (p) PyErr_Format(PyExc_ValueError, "eval_batched: a poly is longer than the nodes");
            PyMem_Free(p);
            Py_CLEAR(out);
            break;
        }
        uint64_t u = 0;
        for (Py_ssize_t i = 0; i < len; i++) u = add(u, mul(w[i], p[i]));
        PyMem_Free(p);
        PyObject *v = PyLong_FromUnsignedLongLong(mul(u, factor));
        if (!v) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, j, v);
    }
    PyMem_Free(nodes);
    PyMem_Free(w);
    Py_DECREF(polys);
    return out;
}

/* dot(a, b): Σ a[i]·b[i] over the shorter length. */
static PyObject *dot(PyObject *self, PyObject *args) {
    PyObject *pa, *pb;
    if (!PyArg_ParseTuple(args, "OO", &pa, &pb)) return NULL;
    Py_ssize_t na, nb;
    uint64_t *a = take(pa, &na, "dot"), *b = a ? take(pb, &nb, "dot") : NULL;
    if (!b) {
        PyMem_Free(a);
        return NULL;
    }
    uint64_t s = 0;
    for (Py_ssize_t i = 0; i < (na < nb ? na : nb); i++) s = add(s, mul(a[i], b[i]));
    PyMem_Free(a);
    PyMem_Free(b);
    return PyLong_FromUnsignedLongLong(s);
}

/* ---- Field128: p = 2^128 - 28·2^64 + 1, elements as unsigned __int128 ------------------------------ */

typedef unsigned __int128 u128;
#define M64 ((u128)0xFFFFFFFFFFFFFFFFULL)
#define P128 ((u128)0 - ((u128)28 << 64) + 1) /* 2^128 - 28·2^64 + 1, wrapping mod 2^128 */

/* The 256-bit product folded with 2^128 ≡ 28·2^64 - 1 and 2^192 ≡ 783·2^64 - 28 (mod p): the
 * positive part kept below 2^128, the negative part (below 2^72) subtracted at the end. */
static inline u128 mul128(u128 a, u128 b) {
    uint64_t a0 = (uint64_t)a, a1 = (uint64_t)(a >> 64), b0 = (uint64_t)b, b1 = (uint64_t)(b >> 64);
    u128 p00 = (u128)a0 * b0, p01 = (u128)a0 * b1, p10 = (u128)a1 * b0, p11 = (u128)a1 * b1;
    u128 mid = (p00 >> 64) + (uint64_t)p01 + (uint64_t)p10;
    uint64_t x0 = (uint64_t)p00, x1 = (uint64_t)mid;
    u128 high = (mid >> 64) + (p01 >> 64) + (p10 >> 64) + p11;
    uint64_t x2 = (uint64_t)high, x3 = (uint64_t)(high >> 64);
    u128 A = (u128)x1 + (u128)28 * x2 + (u128)783 * x3;
    u128 N = (u128)x2 + (u128)28 * x3;
    uint64_t h = (uint64_t)(A >> 64);
    u128 B = (A & M64) + (u128)28 * h;
    N += h;
    while (B >> 64) {
        h = (uint64_t)(B >> 64);
        B = (B & M64) + (u128)28 * h;
        N += h;
    }
    u128 Pos = (u128)x0 + (B << 64);
    if (Pos >= P128) Pos -= P128;
    return Pos >= N ? Pos - N : Pos + (P128 - N);
}
static inline u128 add128(u128 a, u128 b) {
    u128 s = a + b;
    if (s < a) return s + (((u128)28 << 64) - 1); /* wrapped: s + 2^128 - p */
    return s >= P128 ? s - P128 : s;
}
static inline u128 sub128(u128 a, u128 b) { return a >= b ? a - b : a + (P128 - b); }

static PyObject *SHIFT; /* the int 64 */

static u128 *take128(PyObject *seq, Py_ssize_t *n, const char *what) {
    PyObject *fast = PySequence_Fast(seq, what);
    if (!fast) return NULL;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(fast);
    u128 *out = PyMem_Malloc((len ? len : 1) * sizeof(u128));
    if (!out) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return NULL;
    }
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned long long lo = PyLong_AsUnsignedLongLongMask(items[i]);
        PyObject *hi_obj = lo == (unsigned long long)-1 && PyErr_Occurred() ? NULL : PyNumber_Rshift(items[i], SHIFT);
        unsigned long long hi = hi_obj ? PyLong_AsUnsignedLongLong(hi_obj) : 0;
        Py_XDECREF(hi_obj);
        u128 v = ((u128)hi << 64) | lo;
        if (!hi_obj || PyErr_Occurred() || v >= P128) { /* negative or ≥ 2^128 fail above */
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "%s: an element is not below the modulus", what);
            PyMem_Free(out);
            Py_DECREF(fast);
            return NULL;
        }
        out[i] = v;
    }
    Py_DECREF(fast);
    *n = len;
    return out;
}

static PyObject *int128(u128 v) {
    PyObject *hi = PyLong_FromUnsignedLongLong((uint64_t)(v >> 64));
    PyObject *lo = PyLong_FromUnsignedLongLong((uint64_t)v);
    PyObject *shifted = hi && lo ? PyNumber_Lshift(hi, SHIFT) : NULL;
    PyObject *out = shifted ? PyNumber_Or(shifted, lo) : NULL;
    Py_XDECREF(hi);
    Py_XDECREF(lo);
    Py_XDECREF(shifted);
    return out;
}

static PyObject *give128(const u128 *a, Py_ssize_t n) {
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = int128(a[i]);
        if (!v) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, v);
    }
    return list;
}

static PyObject *ntt128(PyObject *self, PyObject *args) {
    PyObject *pa, *pr;
    if (!PyArg_ParseTuple(args, "OO", &pa, &pr)) return NULL;
    Py_ssize_t n, nr;
    u128 *a = take128(pa, &n, "ntt values");
    if (!a) return NULL;
    u128 *roots = take128(pr, &nr, "ntt roots");
    if (!roots) {
        PyMem_Free(a);
        return NULL;
    }
    if (n == 0 || (n & (n - 1)) || nr < n) {
        PyMem_Free(a);
        PyMem_Free(roots);
        return PyErr_Format(PyExc_ValueError, "ntt: the length must be a power of two with as many roots");
    }
    for (Py_ssize_t i = 1, j = 0; i < n; i++) {
        Py_ssize_t bit = n >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            u128 t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
    }
    for (Py_ssize_t half = 1; half < n; half <<= 1) {
        Py_ssize_t stride = n / (2 * half);
        for (Py_ssize_t start = 0; start < n; start += 2 * half)
            for (Py_ssize_t j = 0; j < half; j++) {
                u128 u = a[start + j], v = mul128(a[start + j + half], roots[j * stride]);
                a[start + j] = add128(u, v);
                a[start + j + half] = sub128(u, v);
            }
    }
    PyObject *out = give128(a, n);
    PyMem_Free(a);
    PyMem_Free(roots);
    return out;
}

static PyObject *eval_batched128(PyObject *self, PyObject *args) {
    PyObject *ppolys, *pnodes, *px, *pfactor;
    if (!PyArg_ParseTuple(args, "OOOO", &ppolys, &pnodes, &px, &pfactor)) return NULL;
    PyObject *pair = PyTuple_Pack(2, px, pfactor);
    if (!pair) return NULL;
    Py_ssize_t two, n;
    u128 *xf = take128(pair, &two, "eval_batched point");
    Py_DECREF(pair);
    if (!xf) return NULL;
    u128 x = xf[0], factor = xf[1];
    PyMem_Free(xf);
    u128 *nodes = take128(pnodes, &n, "eval_batched nodes");
    if (!nodes) return NULL;
    u128 *w = PyMem_Malloc((n ? n : 1) * sizeof(u128));
    PyObject *polys = PySequence_Fast(ppolys, "eval_batched polys");
    if (!w || !polys) {
        PyMem_Free(nodes);
        PyMem_Free(w);
        Py_XDECREF(polys);
        return w ? NULL : PyErr_NoMemory();
    }
    u128 k = 1, suffix = 1;
    for (Py_ssize_t i = 1; i < n; i++) {
        k = mul128(k, sub128(nodes[i - 1], x));
        w[i] = mul128(k, nodes[i]);
    }
    for (Py_ssize_t i = n - 1; i > 0; i--) {
        w[i] = mul128(w[i], suffix);
        suffix = mul128(suffix, sub128(nodes[i], x));
    }
    if (n) w[0] = suffix;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(polys);
    PyObject *out = PyList_New(count);
    for (Py_ssize_t j = 0; out && j < count; j++) {
        Py_ssize_t len;
        u128 *p = take128(PySequence_Fast_GET_ITEM(polys, j), &len, "eval_batched poly");
        if (!p || len > n) {
            if (p) PyErr_Format(PyExc_ValueError, "eval_batched: a poly is longer than the nodes");
            PyMem_Free(p);
            Py_CLEAR(out);
            break;
        }
        u128 u = 0;
        for (Py_ssize_t i = 0; i < len; i++) u = add128(u, mul128(w[i], p[i]));
        PyMem_Free(p);
        PyObject *v = int128(mul128(u, factor));
        if (!v) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, j, v);
    }
    PyMem_Free(nodes);
    PyMem_Free(w);
    Py_DECREF(polys);
    return out;
}

static PyObject *dot128(PyObject *self, PyObject *args) {
    PyObject *pa, *pb;
    if (!PyArg_ParseTuple(args, "OO", &pa, &pb)) return NULL;
    Py_ssize_t na, nb;
    u128 *a = take128(pa, &na, "dot"), *b = a ? take128(pb, &nb, "dot") : NULL;
    if (!b) {
        PyMem_Free(a);
        return NULL;
    }
    u128 s = 0;
    for (Py_ssize_t i = 0; i < (na < nb ? na : nb); i++) s = add128(s, mul128(a[i], b[i]));
    PyMem_Free(a);
    PyMem_Free(b);
    return int128(s);
}

/* mul128(a, b) for the tests, which compare it with Python's (a·b) mod p. */
static PyObject *mul128_py(PyObject *self, PyObject *args) {
    Py_ssize_t n;
    u128 *ab = take128(args, &n, "mul");
    if (!ab) return NULL;
    if (n != 2) {
        PyMem_Free(ab);
        return PyErr_Format(PyExc_TypeError, "mul128 takes two elements");
    }
    PyObject *out = int128(mul128(ab[0], ab[1]));
    PyMem_Free(ab);
    return out;
}


/* ---- TurboSHAKE128 (RFC 9861): Keccak-p[1600, 12 rounds], rate 168 bytes ----------------------------
 * Prio3 derives every share and random vector with a fresh XOF over a few dozen bytes (xof.py); through
 * pycryptodome's cffi binding each costs tens of microseconds of call overhead, several times the
 * permutation itself. xof.py falls back to pycryptodome where this is not built; the tests compare them. */

static const uint64_t RC[12] = {
    0x000000008000808BULL, 0x800000000000008BULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800AULL, 0x800000008000000AULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};
static const int RHO[25] = {0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14};

static inline uint64_t rotl(uint64_t x, int n) { return n ? (x << n) | (x >> (64 - n)) : x; }

static void keccak_p12(uint64_t a[25]) {
    uint64_t b[25], c[5], d[5];
    for (int round = 0; round < 12; round++) {
        for (int x = 0; x < 5; x++) c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
        for (int x = 0; x < 5; x++) d[x] = c[(x + 4) % 5] ^ rotl(c[(x + 1) % 5], 1);
        for (int i = 0; i < 25; i++) a[i] ^= d[i % 5];
        /* rho and pi: lane (x, y) moves to (y, 2x + 3y) */
        for (int x = 0; x < 5; x++)
            for (int y = 0; y < 5; y++) b[y + 5 * ((2 * x + 3 * y) % 5)] = rotl(a[x + 5 * y], RHO[x + 5 * y]);
        for (int y = 0; y < 25; y += 5)
            for (int x = 0; x < 5; x++) a[y + x] = b[y + x] ^ (~b[y + (x + 1) % 5] & b[y + (x + 2) % 5]);
        a[0] ^= RC[round];
    }
}

static inline void xor_block(uint64_t a[25], const unsigned char *in, Py_ssize_t len) {
    unsigned char *s = (unsigned char *)a; /* lanes are little-endian on the x86-64 and arm64 this builds on */
    for (Py_ssize_t i = 0; i < len; i++) s[i] ^= in[i];
}

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the lanes are read as little-endian words"
#endif

#define RATE 168

/* turboshake128(message, domain, length): the first `length` bytes of TurboSHAKE128(message, domain). */
static PyObject *turboshake128(PyObject *self, PyObject *args) {
    Py_buffer msg;
    int domain;
    Py_ssize_t length;
    if (!PyArg_ParseTuple(args, "y*in", &msg, &domain, &length)) return NULL;
    if (domain < 1 || domain > 0x7F || length < 0) {
        PyBuffer_Release(&msg);
        PyErr_SetString(PyExc_ValueError, "turboshake128: domain must be in [1, 127] and length non-negative");
        return NULL;
    }
    uint64_t a[25] = {0};
    const unsigned char *in = msg.buf;
    Py_ssize_t left = msg.len;
    for (; left >= RATE; left -= RATE, in += RATE) {
        xor_block(a, in, RATE);
        keccak_p12(a);
    }
    xor_block(a, in, left);
    ((unsigned char *)a)[left] ^= (unsigned char)domain;
    ((unsigned char *)a)[RATE - 1] ^= 0x80;
    PyBuffer_Release(&msg);
    PyObject *out = PyBytes_FromStringAndSize(NULL, length);
    if (!out) return NULL;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    for (Py_ssize_t done = 0; done < length; done += RATE) {
        keccak_p12(a);
        Py_ssize_t n = length - done < RATE ? length - done : RATE;
        memcpy(o + done, a, n);
    }
    return out;
}

static PyMethodDef methods[] = {
    {"ntt", ntt, METH_VARARGS, "Evaluations of a polynomial at the powers of a root of unity (Field64)."},
    {"eval_batched", eval_batched, METH_VARARGS, "Lagrange-basis polynomials evaluated at one point (Field64)."},
    {"dot", dot, METH_VARARGS, "The inner product of two vectors (Field64)."},
    {"ntt128", ntt128, METH_VARARGS, "ntt for Field128."},
    {"eval_batched128", eval_batched128, METH_VARARGS, "eval_batched for Field128."},
    {"dot128", dot128, METH_VARARGS, "dot for Field128."},
    {"turboshake128", turboshake128, METH_VARARGS, "The first `length` bytes of TurboSHAKE128(message, domain)."},
    {"mul128", mul128_py, METH_VARARGS, "One Field128 product (for the tests)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "qdsn.privacy._fields", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fields(void) {
    SHIFT = PyLong_FromLong(64);
    return SHIFT ? PyModule_Create(&module) : NULL;
}
