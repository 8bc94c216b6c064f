/* IterationClock: the event loop monitor's per-iteration timing in C, an optional accelerator
 * of lib/server/process/loopmonitor.py.
 *
 * Rules:
 * - `after_poll()` (the check watcher, first after each poll) notes the monotonic time;
 *   `before_poll()` (the prepare watcher, last before the next poll) records how long the
 *   iteration's callbacks ran since then. The loop calls these C callables directly, so
 *   watching the loop costs no Python frame per iteration (it ran two before: ~1 us each time
 *   the loop woke for one readable socket, which is most of the time with real encoders).
 * - `take()` returns the recorded durations (seconds, a list) and starts a new batch. At most
 *   `capacity` are kept between two takes; later ones are counted in `dropped`, never grown.
 * - CLOCK_MONOTONIC, as time.perf_counter on Linux. No IO, no Python state.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <time.h>

typedef struct {
    PyObject_HEAD
    double t0;
    int have_t0;
    double *buf;
    Py_ssize_t n, cap;
    long long dropped;
} ClockObject;

static inline double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
clock_init(ClockObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"capacity", NULL};
    Py_ssize_t cap = 16384;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|n", kwlist, &cap))
        return -1;
    if (cap < 1 || cap > (1 << 24)) {
        PyErr_SetString(PyExc_ValueError, "capacity must be 1..16M");
        return -1;
    }
    double *buf = PyMem_Realloc(self->buf, cap * sizeof(double));
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->buf = buf;
    self->cap = cap;
    self->n = 0;
    self->have_t0 = 0;
    self->dropped = 0;
    return 0;
}

static void
clock_dealloc(ClockObject *self)
{
    PyMem_Free(self->buf);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
clock_after_poll(ClockObject *self, PyObject *unused)
{
    self->t0 = now_s();
    self->have_t0 = 1;
    Py_RETURN_NONE;
}

static PyObject *
clock_before_poll(ClockObject *self, PyObject *unused)
{
    if (self->have_t0) {
        self->have_t0 = 0;
        if (self->n < self->cap)
            self->buf[self->n++] = now_s() - self->t0;
        else
            self->dropped++;
    }
    Py_RETURN_NONE;
}

static PyObject *
clock_take(ClockObject *self, PyObject *unused)
{
    PyObject *out = PyList_New(self->n);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < self->n; i++) {
        PyObject *v = PyFloat_FromDouble(self->buf[i]);
        if (v == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, v);
    }
    self->n = 0;
    return out;
}

static PyMethodDef clock_methods[] = {
    {"after_poll", (PyCFunction)clock_after_poll, METH_NOARGS, "note the time (after a poll)"},
    {"before_poll", (PyCFunction)clock_before_poll, METH_NOARGS,
     "record the time since after_poll (before the next poll)"},
    {"take", (PyCFunction)clock_take, METH_NOARGS, "the durations recorded since the last take"},
    {NULL}
};

static PyMemberDef clock_members[] = {
    {"dropped", T_LONGLONG, offsetof(ClockObject, dropped), READONLY, NULL},
    {"capacity", T_PYSSIZET, offsetof(ClockObject, cap), READONLY, NULL},
    {NULL}
};

static PyTypeObject ClockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lib.server.process._iterclock.IterationClock",
    .tp_doc = "IterationClock(capacity=16384): after_poll(), before_poll(), take() (C).",
    .tp_basicsize = sizeof(ClockObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)clock_init,
    .tp_dealloc = (destructor)clock_dealloc,
    .tp_methods = clock_methods,
    .tp_members = clock_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_iterclock",
    "Per-iteration timing of the event loop in C (see lib/server/process/loopmonitor.py).", -1,
};

PyMODINIT_FUNC
PyInit__iterclock(void)
{
    if (PyType_Ready(&ClockType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ClockType);
    if (PyModule_AddObject(m, "IterationClock", (PyObject *)&ClockType) < 0)
        return NULL;
    return m;
}
