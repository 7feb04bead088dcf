/* Field64 arithmetic for Prio3's FLP (privacy/flp.py, privacy/field.py): the number theoretic
 * transform, Lagrange-basis evaluation and inner products, on lists of Python ints.
 *
 * Written by hand because in Python each product of two 64-bit elements is a big-integer
 * multiplication and division (a few hundred nanoseconds), and Prio3Count and Prio3Sum spend most of
 * a report there; numpy has no 128-bit product to reduce. The pure Python code beside each call
 * (field._ntt, flp.poly_eval_batched, flp.extend_values_to_power_of_2) runs where this module was
 * not built, and gives the same elements; tests run both and compare them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

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

static PyMethodDef methods[] = {
    {"ntt", ntt, METH_VARARGS, "Evaluations of a polynomial at the powers of a root of unity (Field64)."},
    {"eval_batched", eval_batched, METH_VARARGS, "Lagrange-basis polynomials evaluated at one point (Field64)."},
    {"dot", dot, METH_VARARGS, "The inner product of two vectors (Field64)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "qdsn.privacy._field64", NULL, -1, methods};

PyMODINIT_FUNC PyInit__field64(void) { return PyModule_Create(&module); }
