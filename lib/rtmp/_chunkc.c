/* The RTMP chunk reader and message encoder of lib/rtmp/chunk.py in C: an optional accelerator.
 *
 * Rules:
 * - Same behaviour as the pure-Python ChunkReader, which stays the reference: the same messages
 *   for any split of the byte stream, the same ChunkError (same text) at the same feed, the same
 *   `chunk_size`, `partial_bytes` and `bytes_received` after every feed.
 *   tests/test_chunk.py runs every test on both, and tests/test_chunk_accel.py feeds both the
 *   same random streams, split at random, and compares them after every feed.
 * - encode_message gives the reference's bytes for every input (tested the same way); arguments
 *   that are not plain in-range ints go to the reference itself (`set_reference`).
 * - Memory a peer can make us hold is bounded as in the reference: a partial message holds at
 *   most twice what arrived of it (its buffer grows by doubling, capped at the message length),
 *   the unparsed tail is at most one chunk, the chunk stream table at most 65600 pointers.
 * - Its limits are read-only attributes, checked when it is made (chunk_size >= 1), so no
 *   state can make a length negative.
 * - Built by scripts/build_accel.py (`make` runs it; no compiler: the pure reader is used).
 *   Nothing here does IO or reads a clock.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#define EXTENDED 0xFFFFFFu
#define MSG_SET_CHUNK_SIZE 1
#define MSG_ABORT 2
#define MAX_CSID 65599

static PyObject *ChunkError;   /* lib.rtmp.errors.ChunkError */

/* ------------------------------------------------------------------ Message */

typedef struct {
    PyObject_HEAD
    int csid;
    int type_id;
    unsigned int stream_id;
    unsigned int timestamp;
    PyObject *payload;
} MessageObject;

static PyTypeObject MessageType;

static PyObject *
message_new_c(int csid, int type_id, unsigned int stream_id, unsigned int timestamp,
              PyObject *payload /* stolen */)
{
    MessageObject *m = PyObject_New(MessageObject, &MessageType);
    if (m == NULL) {
        Py_DECREF(payload);
        return NULL;
    }
    m->csid = csid;
    m->type_id = type_id;
    m->stream_id = stream_id;
    m->timestamp = timestamp;
    m->payload = payload;
    return (PyObject *)m;
}

static PyObject *
Message_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"csid", "type_id", "stream_id", "timestamp", "payload", NULL};
    int csid, type_id;
    unsigned int stream_id, timestamp;
    PyObject *payload;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iiIIO", kwlist, &csid, &type_id, &stream_id,
                                     &timestamp, &payload))
        return NULL;
    Py_INCREF(payload);
    return message_new_c(csid, type_id, stream_id, timestamp, payload);
}

static void
Message_dealloc(MessageObject *m)
{
    Py_XDECREF(m->payload);
    PyObject_Free(m);
}

static PyObject *
Message_repr(MessageObject *m)
{
    Py_ssize_t n = PyObject_Length(m->payload);
    if (n < 0)
        return NULL;
    PyObject *head = PySequence_GetSlice(m->payload, 0, 16);
    if (head == NULL)
        return NULL;
    PyObject *head_bytes = PyBytes_FromObject(head);
    Py_DECREF(head);
    if (head_bytes == NULL)
        return NULL;
    PyObject *r = PyUnicode_FromFormat(
        "Message(csid=%d, type_id=%d, stream_id=%u, timestamp=%u, payload=%R%s [%zd])",
        m->csid, m->type_id, m->stream_id, m->timestamp, head_bytes, n > 16 ? "..." : "", n);
    Py_DECREF(head_bytes);
    return r;
}

static PyObject *
Message_richcompare(PyObject *a, PyObject *b, int op)
{
    if ((op != Py_EQ && op != Py_NE) || !PyObject_TypeCheck(b, &MessageType)
        || !PyObject_TypeCheck(a, &MessageType))
        Py_RETURN_NOTIMPLEMENTED;
    MessageObject *x = (MessageObject *)a, *y = (MessageObject *)b;
    int eq = x->csid == y->csid && x->type_id == y->type_id && x->stream_id == y->stream_id
             && x->timestamp == y->timestamp;
    if (eq) {
        eq = PyObject_RichCompareBool(x->payload, y->payload, Py_EQ);
        if (eq < 0)
            return NULL;
    }
    if (op == Py_NE)
        eq = !eq;
    return PyBool_FromLong(eq);
}

static PyMemberDef Message_members[] = {
    {"csid", T_INT, offsetof(MessageObject, csid), 0, NULL},
    {"type_id", T_INT, offsetof(MessageObject, type_id), 0, NULL},
    {"stream_id", T_UINT, offsetof(MessageObject, stream_id), 0, NULL},
    {"timestamp", T_UINT, offsetof(MessageObject, timestamp), 0, NULL},
    {"payload", T_OBJECT_EX, offsetof(MessageObject, payload), 0, NULL},
    {NULL}
};

static PyTypeObject MessageType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lib.rtmp._chunkc.Message",
    .tp_doc = "One RTMP message. `payload` is bytes.",
    .tp_basicsize = sizeof(MessageObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Message_new,
    .tp_dealloc = (destructor)Message_dealloc,
    .tp_repr = (reprfunc)Message_repr,
    .tp_richcompare = Message_richcompare,
    .tp_hash = PyObject_HashNotImplemented,
    .tp_members = Message_members,
};

/* ------------------------------------------------------------------ ChunkReader */

typedef struct {
    uint32_t timestamp;
    uint32_t delta;
    int64_t ext;          /* extended timestamp of the last header, -1 when it had none */
    uint32_t length;
    uint32_t stream_id;
    int type_id;
    PyObject *parts;      /* bytes buffer of the partial message (capacity = its size), or NULL */
    Py_ssize_t received;
} Stream;

typedef struct {
    PyObject_HEAD
    Py_ssize_t chunk_size;
    Py_ssize_t max_message_size;
    Py_ssize_t max_partial_bytes;
    Py_ssize_t partial_bytes;
    long long bytes_received;
    unsigned char *buf;   /* unparsed tail (at most one chunk) */
    Py_ssize_t buf_len, buf_cap;
    Stream **streams;     /* by chunk stream id, grown as ids appear */
    Py_ssize_t nstreams;
} ReaderObject;

static int
reader_init(ReaderObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"chunk_size", "max_message_size", "max_partial_bytes", NULL};
    Py_ssize_t chunk_size = 128, max_message_size = 16 * 1024 * 1024;
    PyObject *max_partial = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|nnO", kwlist, &chunk_size, &max_message_size,
                                     &max_partial))
        return -1;
    if (chunk_size < 1 || max_message_size < 0) {
        PyErr_SetString(PyExc_ValueError, "chunk_size must be >= 1 and max_message_size >= 0");
        return -1;
    }
    self->chunk_size = chunk_size;
    self->max_message_size = max_message_size;
    if (max_partial == Py_None) {
        self->max_partial_bytes = max_message_size;
    } else {
        self->max_partial_bytes = PyLong_AsSsize_t(max_partial);
        if (self->max_partial_bytes == -1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

static void
reader_free_streams(ReaderObject *self)
{
    for (Py_ssize_t i = 0; i < self->nstreams; i++) {
        Stream *cs = self->streams[i];
        if (cs != NULL) {
            Py_XDECREF(cs->parts);
            PyMem_Free(cs);
        }
    }
    PyMem_Free(self->streams);
    self->streams = NULL;
    self->nstreams = 0;
}

static void
reader_dealloc(ReaderObject *self)
{
    reader_free_streams(self);
    PyMem_Free(self->buf);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Stream *
reader_open_stream(ReaderObject *self, int csid)
{
    if (csid >= self->nstreams) {
        Py_ssize_t n = self->nstreams ? self->nstreams : 64;
        while (n <= csid)
            n *= 2;
        if (n > MAX_CSID + 1)
            n = MAX_CSID + 1;
        Stream **grown = PyMem_Realloc(self->streams, n * sizeof(Stream *));
        if (grown == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        memset(grown + self->nstreams, 0, (n - self->nstreams) * sizeof(Stream *));
        self->streams = grown;
        self->nstreams = n;
    }
    Stream *cs = PyMem_Calloc(1, sizeof(Stream));
    if (cs == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    cs->ext = -1;
    self->streams[csid] = cs;
    return cs;
}

static Py_ssize_t
count_partial_streams(ReaderObject *self)
{
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < self->nstreams; i++)
        if (self->streams[i] != NULL && self->streams[i]->parts != NULL)
            n++;
    return n;
}

static inline uint32_t
be24(const unsigned char *p)
{
    return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
}

static inline uint32_t
be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int
apply_control(ReaderObject *self, int type_id, PyObject *payload)
{
    Py_ssize_t n = PyBytes_GET_SIZE(payload);
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(payload);
    if (type_id == MSG_SET_CHUNK_SIZE) {
        if (n < 4) {
            PyErr_Format(ChunkError, "set chunk size of %zd bytes", n);
            return -1;
        }
        uint32_t size = be32(p);
        if (size < 1 || size > 0x7FFFFFFFu) {
            PyErr_Format(ChunkError, "chunk size %u", size);
            return -1;
        }
        self->chunk_size = size;
    } else if (type_id == MSG_ABORT) {
        if (n < 4) {
            PyErr_Format(ChunkError, "abort message of %zd bytes", n);
            return -1;
        }
        uint32_t id = be32(p);
        Stream *cs = id < (uint32_t)self->nstreams ? self->streams[id] : NULL;
        if (cs != NULL && cs->parts != NULL) {
            self->partial_bytes -= cs->received;
            Py_CLEAR(cs->parts);
            cs->received = 0;
        }
    }
    return 0;
}

/* Parse one chunk at `pos` of v[0:n]: apply it and return the position after it; return -1
 * when it is not fully buffered (nothing changed), -2 on error (exception set). */
static Py_ssize_t
read_chunk(ReaderObject *self, const unsigned char *v, Py_ssize_t n, Py_ssize_t pos,
           PyObject *out)
{
    static const int header_size[4] = {11, 7, 3, 0};
    Py_ssize_t avail = n - pos;
    if (avail < 1)
        return -1;
    int b0 = v[pos];
    int fmt = b0 >> 6;
    int csid = b0 & 0x3F;
    Py_ssize_t p = pos + 1;
    if (csid < 2) {
        if (csid == 0) {
            if (avail < 2)
                return -1;
            csid = 64 + v[p];
            p += 1;
        } else {
            if (avail < 3)
                return -1;
            csid = 64 + v[p] + (v[p + 1] << 8);
            p += 2;
        }
    }
    Stream *cs = csid < self->nstreams ? self->streams[csid] : NULL;
    if (cs == NULL && fmt >= 2) {
        PyErr_Format(ChunkError, "fmt %d on chunk stream %d never opened", fmt, csid);
        return -2;
    }
    int partial = cs != NULL && cs->parts != NULL;
    Py_ssize_t end = p + header_size[fmt];
    if (end > n)
        return -1;

    uint32_t ts_field = 0, length = 0, stream_id = 0;
    int type_id = 0;
    if (fmt == 0) {
        if (partial) {
            PyErr_Format(ChunkError, "fmt 0 on chunk stream %d with a partial message", csid);
            return -2;
        }
        ts_field = be24(v + p);
        length = be24(v + p + 3);
        type_id = v[p + 6];
        stream_id = (uint32_t)v[p + 7] | ((uint32_t)v[p + 8] << 8) | ((uint32_t)v[p + 9] << 16)
                    | ((uint32_t)v[p + 10] << 24);
    } else if (fmt == 1) {
        ts_field = be24(v + p);
        length = be24(v + p + 3);
        type_id = v[p + 6];
    } else if (fmt == 2) {
        ts_field = be24(v + p);
    }
    p = end;

    int64_t ext = -1;
    if (fmt < 3) {
        if (ts_field == EXTENDED) {
            end = p + 4;
            if (end > n)
                return -1;
            ts_field = be32(v + p);
            ext = ts_field;
            p = end;
        }
        if (fmt < 2) {
            if ((Py_ssize_t)length > self->max_message_size) {
                PyErr_Format(ChunkError, "message of %u bytes on chunk stream %d exceeds %zd",
                             length, csid, self->max_message_size);
                return -2;
            }
            if (partial && length != cs->length) {
                PyErr_Format(ChunkError, "message length on chunk stream %d changed from %u "
                             "to %u mid-message", csid, cs->length, length);
                return -2;
            }
        } else {
            length = cs->length;
        }
    } else {
        length = cs->length;
        if (cs->ext >= 0) {
            end = p + 4;
            if (end > n)
                return -1;
            uint32_t value = be32(v + p);
            if (!partial) {
                ext = value;
                p = end;
            } else if ((int64_t)value == cs->ext) {
                p = end;
            }
        }
    }

    Py_ssize_t received = partial ? cs->received : 0;
    Py_ssize_t size = (Py_ssize_t)length - received;
    if (size > self->chunk_size)
        size = self->chunk_size;
    end = p + size;
    if (end > n)
        return -1;

    /* The whole chunk is buffered: apply it. */
    if (cs == NULL) {
        cs = reader_open_stream(self, csid);
        if (cs == NULL)
            return -2;
    }
    if (fmt < 3) {
        cs->ext = ext;
        cs->delta = ts_field;
        if (fmt == 0) {
            cs->timestamp = ts_field;
            cs->stream_id = stream_id;
        } else if (!partial) {
            cs->timestamp = cs->timestamp + ts_field;   /* uint32_t wraps like & MASK32 */
        }
        if (fmt < 2) {
            cs->length = length;
            cs->type_id = type_id;
        }
    } else if (!partial) {
        if (ext >= 0)
            cs->delta = (uint32_t)ext, cs->ext = ext;
        cs->timestamp = cs->timestamp + cs->delta;
    }

    if (length == 0)
        return end;                 /* an empty message is dropped (as SRS), see chunk.py */
    PyObject *payload;
    if (!partial && size == (Py_ssize_t)length) {
        payload = PyBytes_FromStringAndSize((const char *)v + p, size);
        if (payload == NULL)
            return -2;
    } else {
        Py_ssize_t need = received + size;
        Py_ssize_t cap = cs->parts != NULL ? PyBytes_GET_SIZE(cs->parts) : 0;
        if (need > cap) {
            Py_ssize_t grow = cap * 2;
            if (grow < need)
                grow = need;
            if (grow > (Py_ssize_t)length)
                grow = length;
            if (cs->parts == NULL) {
                cs->parts = PyBytes_FromStringAndSize(NULL, grow);
                if (cs->parts == NULL)
                    return -2;
            } else if (_PyBytes_Resize(&cs->parts, grow) < 0) {
                cs->parts = NULL;
                return -2;
            }
        }
        memcpy(PyBytes_AS_STRING(cs->parts) + received, v + p, size);
        received = need;
        if (received < (Py_ssize_t)length) {
            cs->received = received;
            self->partial_bytes += size;
            if (self->partial_bytes > self->max_partial_bytes) {
                PyErr_Format(ChunkError, "%zd bytes of partial messages on %zd chunk streams "
                             "exceed %zd", self->partial_bytes, count_partial_streams(self),
                             self->max_partial_bytes);
                return -2;
            }
            return end;
        }
        self->partial_bytes -= received - size;
        payload = cs->parts;        /* exactly `length` bytes: the buffer is the payload */
        cs->parts = NULL;
        cs->received = 0;
    }

    PyObject *msg = message_new_c(csid, cs->type_id, cs->stream_id, cs->timestamp, payload);
    if (msg == NULL)
        return -2;
    int failed = PyList_Append(out, msg);
    Py_DECREF(msg);
    if (failed)
        return -2;
    if (cs->type_id <= MSG_ABORT && apply_control(self, cs->type_id, ((MessageObject *)msg)->payload) < 0)
        return -2;
    return end;
}

static int
buf_reserve(ReaderObject *self, Py_ssize_t size)
{
    if (size <= self->buf_cap)
        return 0;
    Py_ssize_t cap = self->buf_cap ? self->buf_cap : 4096;
    while (cap < size)
        cap *= 2;
    unsigned char *grown = PyMem_Realloc(self->buf, cap);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->buf = grown;
    self->buf_cap = cap;
    return 0;
}

/* Parse `n` bytes that arrived: the complete messages (a new list) or NULL with an exception.
 * `data` is read only during the call (the unparsed tail is copied), so a caller may reuse it. */
static PyObject *
reader_feed_raw(ReaderObject *self, const unsigned char *data, Py_ssize_t len)
{
    self->bytes_received += len;
    const unsigned char *v;
    Py_ssize_t n;
    if (self->buf_len == 0) {
        v = data;              /* parse the caller's bytes in place; keep only the tail */
        n = len;
    } else {
        if (buf_reserve(self, self->buf_len + len) < 0)
            return NULL;
        memcpy(self->buf + self->buf_len, data, len);
        self->buf_len += len;
        v = self->buf;
        n = self->buf_len;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    Py_ssize_t pos = 0;
    for (;;) {
        Py_ssize_t end = read_chunk(self, v, n, pos, out);
        if (end == -1)
            break;
        if (end == -2) {
            Py_DECREF(out);
            return NULL;
        }
        pos = end;
    }
    Py_ssize_t rest = n - pos;
    if (v == self->buf) {
        if (rest && pos)
            memmove(self->buf, self->buf + pos, rest);
    } else if (rest) {
        if (buf_reserve(self, rest) < 0) {
            Py_DECREF(out);
            return NULL;
        }
        memcpy(self->buf, v + pos, rest);
    }
    self->buf_len = rest;
    return out;
}

static PyObject *
reader_feed(ReaderObject *self, PyObject *data)
{
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *out = reader_feed_raw(self, view.buf, view.len);
    PyBuffer_Release(&view);
    return out;
}

/* For lib/server/core/_pumpc.c (the socket side lives there, this file does no IO): the
 * capsule `_chunkc._feed_raw` holds this, checking the reader's type first. */
static PyTypeObject ReaderType;

/* The `_message_parts` capsule (the server's socket pump): a Message's type id, timestamp and
 * payload (borrowed), or 0 when `obj` is not a Message. */
static int
message_parts(PyObject *obj, int *type_id, unsigned int *timestamp, PyObject **payload)
{
    if (!Py_IS_TYPE(obj, &MessageType))
        return 0;
    MessageObject *m = (MessageObject *)obj;
    *type_id = m->type_id;
    *timestamp = m->timestamp;
    *payload = m->payload;
    return 1;
}

static PyObject *
feed_raw_checked(PyObject *reader, const unsigned char *data, Py_ssize_t len)
{
    if (!PyObject_TypeCheck(reader, &ReaderType)) {
        PyErr_SetString(PyExc_TypeError, "not a _chunkc.ChunkReader");
        return NULL;
    }
    return reader_feed_raw((ReaderObject *)reader, data, len);
}

static PyMethodDef reader_methods[] = {
    {"feed", (PyCFunction)reader_feed, METH_O, "feed(data) -> list of complete messages"},
    {NULL}
};

static PyMemberDef reader_members[] = {
    {"chunk_size", T_PYSSIZET, offsetof(ReaderObject, chunk_size), READONLY, NULL},
    {"max_message_size", T_PYSSIZET, offsetof(ReaderObject, max_message_size), READONLY, NULL},
    {"max_partial_bytes", T_PYSSIZET, offsetof(ReaderObject, max_partial_bytes), READONLY, NULL},
    {"partial_bytes", T_PYSSIZET, offsetof(ReaderObject, partial_bytes), READONLY, NULL},
    {"bytes_received", T_LONGLONG, offsetof(ReaderObject, bytes_received), READONLY, NULL},
    {NULL}
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lib.rtmp._chunkc.ChunkReader",
    .tp_doc = "Incremental chunk stream parser: `feed(data) -> list[Message]` (C).",
    .tp_basicsize = sizeof(ReaderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)reader_init,
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_methods = reader_methods,
    .tp_members = reader_members,
};


/* ------------------------------------------------------------------ encode_message */

static PyObject *pure_encode;   /* lib.rtmp.chunk.pure_encode_message: odd arguments go there */

static void
put_basic(unsigned char **q, int fmt, int csid)
{
    unsigned char *p = *q;
    if (csid <= 63) {
        *p++ = (unsigned char)(fmt << 6 | csid);
    } else if (csid <= 319) {
        *p++ = (unsigned char)(fmt << 6);
        *p++ = (unsigned char)(csid - 64);
    } else {
        *p++ = (unsigned char)(fmt << 6 | 1);
        *p++ = (unsigned char)((csid - 64) & 0xFF);
        *p++ = (unsigned char)((csid - 64) >> 8);
    }
    *q = p;
}

static inline void
put_be32(unsigned char *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

/* encode_message(csid, type_id, stream_id, timestamp, payload, chunk_size) -> bytes: the same
 * bytes as the Python reference (fmt 0 header, fmt 3 between chunks, the extended timestamp
 * after every chunk header when needed). Arguments it does not take as plain in-range ints go
 * to the reference, which raises what it raises. */
static PyObject *
encode_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || pure_encode == NULL)
        goto fallback;
    long csid = PyLong_Check(args[0]) ? PyLong_AsLong(args[0]) : -1;
    long type_id = PyLong_Check(args[1]) ? PyLong_AsLong(args[1]) : -1;
    long long stream_id = PyLong_Check(args[2]) ? PyLong_AsLongLong(args[2]) : -1;
    long chunk_size = PyLong_Check(args[5]) ? PyLong_AsLong(args[5]) : -1;
    if (PyErr_Occurred()) {
        PyErr_Clear();
        goto fallback;
    }
    if (csid < 2 || csid > MAX_CSID || type_id < 0 || type_id > 255 || stream_id < 0
        || stream_id > 0xFFFFFFFFLL || chunk_size < 1 || !PyLong_Check(args[3]))
        goto fallback;
    uint32_t ts = (uint32_t)(PyLong_AsUnsignedLongLongMask(args[3]) & 0xFFFFFFFFu);
    if (PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[4], &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        goto fallback;
    }
    Py_ssize_t length = view.len;
    if (length > 0xFFFFFF) {
        PyBuffer_Release(&view);
        goto fallback;
    }
    int ext = ts >= EXTENDED;
    int basic = csid <= 63 ? 1 : (csid <= 319 ? 2 : 3);
    Py_ssize_t chunks = length ? (length + chunk_size - 1) / chunk_size : 1;
    Py_ssize_t size = basic + 11 + (ext ? 4 : 0) + length + (chunks - 1) * (basic + (ext ? 4 : 0));
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    unsigned char *q = (unsigned char *)PyBytes_AS_STRING(out);
    const unsigned char *src = view.buf;
    put_basic(&q, 0, (int)csid);
    uint32_t field = ext ? EXTENDED : ts;
    q[0] = field >> 16; q[1] = field >> 8; q[2] = field;
    q[3] = length >> 16; q[4] = length >> 8; q[5] = length;
    q[6] = (unsigned char)type_id;
    q[7] = stream_id; q[8] = stream_id >> 8; q[9] = stream_id >> 16; q[10] = stream_id >> 24;
    q += 11;
    if (ext) {
        put_be32(q, ts);
        q += 4;
    }
    Py_ssize_t first = length < chunk_size ? length : chunk_size;
    memcpy(q, src, first);
    q += first;
    for (Py_ssize_t pos = first; pos < length; pos += chunk_size) {
        put_basic(&q, 3, (int)csid);
        if (ext) {
            put_be32(q, ts);
            q += 4;
        }
        Py_ssize_t n = length - pos < chunk_size ? length - pos : chunk_size;
        memcpy(q, src + pos, n);
        q += n;
    }
    PyBuffer_Release(&view);
    return out;

fallback:
    if (pure_encode == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_chunkc.encode_message: no reference set");
        return NULL;
    }
    return PyObject_Vectorcall(pure_encode, args, nargs, NULL);
}

static PyObject *
set_reference(PyObject *module, PyObject *func)
{
    Py_XDECREF(pure_encode);
    Py_INCREF(func);
    pure_encode = func;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"encode_message", (PyCFunction)(void (*)(void))encode_message, METH_FASTCALL,
     "encode_message(csid, type_id, stream_id, timestamp, payload, chunk_size) -> bytes"},
    {"set_reference", set_reference, METH_O,
     "set_reference(pure_encode_message): where arguments the C encoder does not take go"},
    {NULL}
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_chunkc", "The RTMP chunk reader in C (see lib/rtmp/chunk.py).", -1,
    module_methods,
};

PyMODINIT_FUNC
PyInit__chunkc(void)
{
    if (PyType_Ready(&MessageType) < 0 || PyType_Ready(&ReaderType) < 0)
        return NULL;
    PyObject *errors = PyImport_ImportModule("lib.rtmp.errors");
    if (errors == NULL)
        return NULL;
    ChunkError = PyObject_GetAttrString(errors, "ChunkError");
    Py_DECREF(errors);
    if (ChunkError == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&MessageType);
    Py_INCREF(&ReaderType);
    if (PyModule_AddObject(m, "Message", (PyObject *)&MessageType) < 0
        || PyModule_AddObject(m, "ChunkReader", (PyObject *)&ReaderType) < 0)
        return NULL;
    PyObject *feed = PyCapsule_New((void *)feed_raw_checked, "lib.rtmp._chunkc._feed_raw", NULL);
    if (feed == NULL || PyModule_AddObject(m, "_feed_raw", feed) < 0)
        return NULL;
    PyObject *parts = PyCapsule_New((void *)message_parts, "lib.rtmp._chunkc._message_parts", NULL);
    if (parts == NULL || PyModule_AddObject(m, "_message_parts", parts) < 0)
        return NULL;
    return m;
}
