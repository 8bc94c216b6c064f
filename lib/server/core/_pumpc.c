/* SocketPump: the ingest hot path's read in C, an optional accelerator of lib/server/core/receiver.py.
 *
 * Rules:
 * - One pump per streaming connection, called by the event loop's io watcher each time its socket
 *   is readable (gevent calls any callable; this one runs with no Python frame): one recv of at
 *   most `size` bytes into a buffer shared by all pumps (the loop runs one callback at a time),
 *   then the chunk reader of lib/rtmp/_chunkc.c parses them (through its `_feed_raw` capsule;
 *   the parser does no IO, this file does no parsing).
 * - Python runs only when a read completed at least one message: `on_messages(messages, nbytes)`
 *   with the bytes read since its last call (also with no message once `size` bytes came
 *   without one, so the connection's byte count stays current under any input). A read that brought part of a message (encoders
 *   write a message's chunk header and its payload apart) costs no Python at all.
 * - `on_messages` returns None to go on, anything else to stop: then `on_stop(value, None)`.
 *   End of stream is `on_stop(None, None)`; a socket error, a ChunkError, or an exception from
 *   `on_messages` is `on_stop(None, exception)`. After on_stop the pump does nothing until it
 *   is made again; `close()` drops its callbacks. A pump never raises into the event loop.
 * - The media path: with `on_media` set (the source's C on_media) and `budget` > 0, a read whose
 *   messages are all audio and video goes straight to `on_media(type_id, timestamp, payload)`
 *   for each, with no Python, while the bytes read since `on_messages` last ran stay below
 *   `budget`. `on_messages` sets the budget each time it ran (0 when the connection is not
 *   in its plain publishing state, so the next read comes back to it); once the budget is
 *   spent it runs again and gets all those bytes as `nbytes`, so byte counts and
 *   acknowledgements lag by at most `budget` bytes. An exception from `on_media` stops the
 *   pump as one from `on_messages` does.
 * - `reads` counts the recvs that returned bytes or EOF (the receiver's idle bound reads it).
 * - Built by scripts/build_accel.py with _chunkc; without either, receiver.py reads in Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <errno.h>
#include <sys/socket.h>

typedef PyObject *(*feed_raw_fn)(PyObject *reader, const unsigned char *data, Py_ssize_t len);
typedef int (*message_parts_fn)(PyObject *obj, int *type_id, unsigned int *timestamp,
                                PyObject **payload);

static feed_raw_fn feed_raw;
static message_parts_fn message_parts;
static unsigned char *shared_buf;       /* one read at a time: the loop runs one callback at once */
static Py_ssize_t shared_cap;

typedef struct {
    PyObject_HEAD
    PyObject *reader;
    PyObject *on_messages;
    PyObject *on_stop;        /* NULL once stopped or closed */
    PyObject *on_media;       /* NULL or None: every message goes to on_messages */
    long long budget;         /* bytes the media path may take before on_messages runs */
    int fd;
    Py_ssize_t size;
    long long reads;
    long long pending;        /* bytes read since on_messages last ran */
} PumpObject;

static int
pump_init(PumpObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"reader", "fd", "on_messages", "on_stop", "size", NULL};
    PyObject *reader, *on_messages, *on_stop;
    int fd;
    Py_ssize_t size = 65536;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OiOO|n", kwlist, &reader, &fd, &on_messages,
                                     &on_stop, &size))
        return -1;
    if (size < 1 || size > (1 << 24)) {
        PyErr_SetString(PyExc_ValueError, "size must be 1..16 MiB");
        return -1;
    }
    if (size > shared_cap) {
        unsigned char *grown = PyMem_Realloc(shared_buf, size);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        shared_buf = grown;
        shared_cap = size;
    }
    Py_INCREF(reader);
    Py_INCREF(on_messages);
    Py_INCREF(on_stop);
    Py_XSETREF(self->reader, reader);
    Py_XSETREF(self->on_messages, on_messages);
    Py_XSETREF(self->on_stop, on_stop);
    self->fd = fd;
    self->size = size;
    return 0;
}

static void
pump_clear(PumpObject *self)
{
    Py_CLEAR(self->reader);
    Py_CLEAR(self->on_messages);
    Py_CLEAR(self->on_stop);
    Py_CLEAR(self->on_media);
}

static void
pump_dealloc(PumpObject *self)
{
    pump_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Stop: call on_stop(value, exc) once; its own failure is reported, never raised. */
static void
pump_stop(PumpObject *self, PyObject *value, PyObject *exc)
{
    PyObject *on_stop = self->on_stop;
    if (on_stop == NULL)
        return;
    self->on_stop = NULL;     /* our reference moves to this frame */
    PyObject *r = PyObject_CallFunctionObjArgs(on_stop, value, exc ? exc : Py_None, NULL);
    if (r == NULL)
        PyErr_WriteUnraisable(on_stop);
    Py_XDECREF(r);
    Py_DECREF(on_stop);
}

/* The pending exception goes to on_stop. */
static void
pump_stop_error(PumpObject *self)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    pump_stop(self, Py_None, value);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

/* The media path: 1 when every message went to on_media, 0 when some message is not audio or
 * video (nothing was delivered: on_messages takes them all), -1 on an error. */
static int
deliver_media(PumpObject *self, PyObject *messages)
{
    Py_ssize_t count = PyList_GET_SIZE(messages);
    int type_id;
    unsigned int timestamp;
    PyObject *payload;
    if (count == 0)
        return 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!message_parts(PyList_GET_ITEM(messages, i), &type_id, &timestamp, &payload)
                || (type_id != 8 && type_id != 9))
            return 0;
    }
    PyObject *on_media = self->on_media;
    Py_INCREF(on_media);
    for (Py_ssize_t i = 0; i < count; i++) {
        message_parts(PyList_GET_ITEM(messages, i), &type_id, &timestamp, &payload);
        PyObject *args[3] = {PyLong_FromLong(type_id), PyLong_FromUnsignedLong(timestamp), payload};
        PyObject *r = NULL;
        if (args[0] != NULL && args[1] != NULL)
            r = PyObject_Vectorcall(on_media, args, 3, NULL);
        Py_XDECREF(args[0]);
        Py_XDECREF(args[1]);
        if (r == NULL) {
            Py_DECREF(on_media);
            return -1;
        }
        Py_DECREF(r);
    }
    Py_DECREF(on_media);
    return 1;
}

static PyObject *
pump_call(PumpObject *self, PyObject *args, PyObject *kwds)
{
    if (self->on_stop == NULL)
        Py_RETURN_NONE;
    ssize_t n = recv(self->fd, shared_buf, (size_t)self->size, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            Py_RETURN_NONE;
        PyErr_SetFromErrno(PyExc_OSError);
        pump_stop_error(self);
        Py_RETURN_NONE;
    }
    self->reads++;
    if (n == 0) {
        pump_stop(self, Py_None, NULL);
        Py_RETURN_NONE;
    }
    self->pending += n;
    PyObject *messages = feed_raw(self->reader, shared_buf, n);
    if (messages == NULL) {
        pump_stop_error(self);
        Py_RETURN_NONE;
    }
    if (PyList_GET_SIZE(messages) == 0 && self->pending < self->size) {
        Py_DECREF(messages);
        Py_RETURN_NONE;
    }
    if (self->pending < self->budget && self->on_media != NULL && self->on_media != Py_None) {
        int handled = deliver_media(self, messages);
        if (handled < 0) {
            Py_DECREF(messages);
            pump_stop_error(self);
            Py_RETURN_NONE;
        }
        if (handled) {
            Py_DECREF(messages);
            Py_RETURN_NONE;
        }
    }
    PyObject *nbytes = PyLong_FromLongLong(self->pending);
    if (nbytes == NULL) {
        Py_DECREF(messages);
        pump_stop_error(self);
        Py_RETURN_NONE;
    }
    self->pending = 0;
    PyObject *on_messages = self->on_messages;
    Py_INCREF(on_messages);
    PyObject *r = PyObject_CallFunctionObjArgs(on_messages, messages, nbytes, NULL);
    Py_DECREF(on_messages);
    Py_DECREF(messages);
    Py_DECREF(nbytes);
    if (r == NULL) {
        pump_stop_error(self);
        Py_RETURN_NONE;
    }
    if (r != Py_None)
        pump_stop(self, r, NULL);
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *
pump_close(PumpObject *self, PyObject *unused)
{
    pump_clear(self);
    Py_RETURN_NONE;
}

static PyMethodDef pump_methods[] = {
    {"close", (PyCFunction)pump_close, METH_NOARGS, "drop the callbacks; calls do nothing after"},
    {NULL}
};

static PyMemberDef pump_members[] = {
    {"reads", T_LONGLONG, offsetof(PumpObject, reads), READONLY, NULL},
    {"on_media", T_OBJECT, offsetof(PumpObject, on_media), 0, NULL},
    {"budget", T_LONGLONG, offsetof(PumpObject, budget), 0, NULL},
    {"pending", T_LONGLONG, offsetof(PumpObject, pending), READONLY, NULL},
    {"fd", T_INT, offsetof(PumpObject, fd), READONLY, NULL},
    {NULL}
};

static PyTypeObject PumpType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lib.server.core._pumpc.SocketPump",
    .tp_doc = "SocketPump(reader, fd, on_messages, on_stop, size=65536): call when readable.",
    .tp_basicsize = sizeof(PumpObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)pump_init,
    .tp_dealloc = (destructor)pump_dealloc,
    .tp_call = (ternaryfunc)pump_call,
    .tp_methods = pump_methods,
    .tp_members = pump_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pumpc",
    "recv + chunk parse in one call per readable event (see lib/server/core/receiver.py).", -1,
};

PyMODINIT_FUNC
PyInit__pumpc(void)
{
    feed_raw = (feed_raw_fn)PyCapsule_Import("lib.rtmp._chunkc._feed_raw", 0);
    if (feed_raw == NULL)
        return NULL;
    message_parts = (message_parts_fn)PyCapsule_Import("lib.rtmp._chunkc._message_parts", 0);
    if (message_parts == NULL)
        return NULL;
    if (PyType_Ready(&PumpType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&PumpType);
    if (PyModule_AddObject(m, "SocketPump", (PyObject *)&PumpType) < 0)
        return NULL;
    return m;
}
