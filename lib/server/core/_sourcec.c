/* A live source's per-message bookkeeping in C: an optional accelerator of
 * lib/server/core/source.py, lib/media/jitter.py and lib/media/gop.py.
 *
 * Rules:
 * - The Python code stays the reference: `Jitter`, `GopCache` and `SharedMessage` here have the
 *   attributes, methods and results of their Python twins, and `SourceCore.on_media` does what
 *   `Source._on_media_py` does for audio and video once media flows (anything else, and any
 *   keyword call, goes to `_on_media_py` itself). tests/test_source_accel.py feeds both the
 *   same random messages and compares every attribute and every encoded byte after each one.
 * - `SourceCore` is the base class of `Source` when this is built: the attributes the media
 *   path reads and writes are C fields (same names, same values as in Python), the rest of the
 *   source stays in its Python __dict__. Sinks, the flusher's Event and `_clear_log` are called
 *   through Python, as the reference does.
 * - A SharedMessage's bytes are made on first use, once: the fmt 1 chunks of a chained message
 *   and the FLV tag here, the fmt 0 chunks and the parsed Frame through the Python functions
 *   given to `set_references` (lib.rtmp.chunk.encode_message, lib.media.frame.parse).
 * - Integers are 64-bit: RTMP's 32-bit timestamps, unwrapped, fit for millions of years.
 * - Built by scripts/build_accel.py; SRSEDGE_PURE_PYTHON or no compiler: the Python path.
 *   Nothing here does IO or reads a clock.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#define MSG_AUDIO 8
#define MSG_VIDEO 9
#define MSG_AMF0_DATA 18
#define CSID_DATA 5
#define CSID_VIDEO 6
#define CSID_AUDIO 7
#define MAX_JITTER_MS 250
#define DEFAULT_FRAME_MS 10
#define MASK32 0xFFFFFFFFLL
#define HALF 0x80000000LL
#define EXTENDED 0xFFFFFFLL
#define PURE_AUDIO_LIMIT 115

static PyObject *ref_encode_message;   /* lib.rtmp.chunk.encode_message */
static PyObject *ref_parse;            /* lib.media.frame.parse */
static long stream_id = 1;             /* lib.rtmp.session.STREAM_ID */
static PyObject *str_rtmp, *str_flv, *str_on_message, *str_is_set, *str_set, *str_clear_log,
    *str_on_media_py, *str_is_keyframe, *str_is_sequence_header;

/* ------------------------------------------------------------------ Jitter */

typedef struct {
    PyObject_HEAD
    PyObject *mode;            /* the mode as given ("full", "zero", "off") */
    int code;                  /* 0 full, 1 zero, 2 anything else (off) */
    int has_last_in;
    long long last_in, last_out, max_out, offset, position;
    char started;
} JitterObject;

static PyTypeObject JitterType;

static int
jitter_set_mode(JitterObject *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete mode");
        return -1;
    }
    int code = 2;
    if (PyUnicode_Check(value)) {
        if (PyUnicode_CompareWithASCIIString(value, "full") == 0)
            code = 0;
        else if (PyUnicode_CompareWithASCIIString(value, "zero") == 0)
            code = 1;
    }
    Py_INCREF(value);
    Py_XSETREF(self->mode, value);
    self->code = code;
    return 0;
}

static PyObject *
jitter_get_mode(JitterObject *self, void *closure)
{
    return Py_NewRef(self->mode);
}

static PyObject *
jitter_get_last_in(JitterObject *self, void *closure)
{
    if (!self->has_last_in)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(self->last_in);
}

static int
jitter_set_last_in(JitterObject *self, PyObject *value, void *closure)
{
    if (value == NULL || value == Py_None) {
        self->has_last_in = 0;
        return 0;
    }
    long long v = PyLong_AsLongLong(value);
    if (v == -1 && PyErr_Occurred())
        return -1;
    self->last_in = v;
    self->has_last_in = 1;
    return 0;
}

static int
jitter_init(JitterObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"mode", NULL};
    PyObject *mode = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O", kwlist, &mode))
        return -1;
    if (mode == NULL)
        mode = PyUnicode_FromString("full");
    else
        Py_INCREF(mode);
    if (mode == NULL)
        return -1;
    int rc = jitter_set_mode(self, mode, NULL);
    Py_DECREF(mode);
    self->has_last_in = 0;
    self->last_in = self->last_out = self->max_out = self->offset = self->position = 0;
    self->started = 0;
    return rc;
}

static void
jitter_dealloc(JitterObject *self)
{
    Py_XDECREF(self->mode);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static inline long long
wire_delta(long long ts, long long last)
{
    return ((ts - last + HALF) & MASK32) - HALF;
}

static long long
jitter_correct_c(JitterObject *self, long long ts)
{
    if (self->code != 0) {
        int had = self->has_last_in;
        long long last_in = self->last_in;
        self->last_in = ts;
        self->has_last_in = 1;
        if (!had) {
            if (self->code == 1) {
                self->offset = self->started ? self->max_out + DEFAULT_FRAME_MS : 0;
                self->position = 0;
            } else {
                self->position = ts;
            }
        } else {
            self->position += wire_delta(ts, last_in);
        }
        if (self->code == 1)
            ts = self->offset + (self->position > 0 ? self->position : 0);
        else
            ts = self->position >= 0 ? self->position : (self->position & MASK32);
        self->started = 1;
        self->last_out = ts;
        if (ts > self->max_out)
            self->max_out = ts;
        return ts;
    }
    int had = self->has_last_in;
    long long last_in = self->last_in;
    self->last_in = ts;
    self->has_last_in = 1;
    if (had) {
        long long delta = ts - last_in;
        if (delta > MAX_JITTER_MS || delta < -MAX_JITTER_MS)
            delta = wire_delta(ts, last_in);
        if (-MAX_JITTER_MS <= delta && delta <= MAX_JITTER_MS) {
            long long out = self->last_out + delta;
            if (out < 0)
                out = 0;
            self->last_out = out;
            if (out > self->max_out)
                self->max_out = out;
            return out;
        }
    }
    if (!self->started) {
        self->started = 1;
        self->last_out = 0;
        return 0;
    }
    long long out = self->max_out + DEFAULT_FRAME_MS;
    self->last_out = self->max_out = out;
    return out;
}

static PyObject *
jitter_correct(JitterObject *self, PyObject *arg)
{
    long long ts = PyLong_AsLongLong(arg);
    if (ts == -1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromLongLong(jitter_correct_c(self, ts));
}

static PyObject *
jitter_restart(JitterObject *self, PyObject *unused)
{
    self->has_last_in = 0;
    Py_RETURN_NONE;
}

static PyMethodDef jitter_methods[] = {
    {"correct", (PyCFunction)jitter_correct, METH_O, "correct(ts) -> the timestamp out"},
    {"restart", (PyCFunction)jitter_restart, METH_NOARGS, "a new publisher begins"},
    {NULL}
};

static PyMemberDef jitter_members[] = {
    {"last_out", T_LONGLONG, offsetof(JitterObject, last_out), 0, NULL},
    {"max_out", T_LONGLONG, offsetof(JitterObject, max_out), 0, NULL},
    {"offset", T_LONGLONG, offsetof(JitterObject, offset), 0, NULL},
    {"position", T_LONGLONG, offsetof(JitterObject, position), 0, NULL},
    {"started", T_BOOL, offsetof(JitterObject, started), 0, NULL},
    {NULL}
};

static PyGetSetDef jitter_getset[] = {
    {"mode", (getter)jitter_get_mode, (setter)jitter_set_mode, NULL, NULL},
    {"last_in", (getter)jitter_get_last_in, (setter)jitter_set_last_in, NULL, NULL},
    {NULL}
};

static PyTypeObject JitterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lib.server.core._sourcec.Jitter",
    .tp_basicsize = sizeof(JitterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "lib.media.jitter.Jitter in C",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)jitter_init,
    .tp_dealloc = (destructor)jitter_dealloc,
    .tp_methods = jitter_methods,
    .tp_members = jitter_members,
    .tp_getset = jitter_getset,
};

/* ------------------------------------------------------------------ GopCache */

typedef struct {
    PyObject_HEAD
    PyObject *items;           /* a list */
    long long max_frames, audio_since_video;
    char enabled, has_keyframe;
} GopObject;

static PyTypeObject GopType;

static int
gop_init(GopObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"enabled", "max_frames", NULL};
    int enabled = 1;
    long long max_frames = 2500;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|pL", kwlist, &enabled, &max_frames))
        return -1;
    PyObject *items = PyList_New(0);
    if (items == NULL)
        return -1;
    Py_XSETREF(self->items, items);
    self->enabled = (char)enabled;
    self->max_frames = max_frames;
    self->audio_since_video = 0;
    self->has_keyframe = 0;
    return 0;
}

static void
gop_dealloc(GopObject *self)
{
    Py_XDECREF(self->items);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
gop_clear_c(GopObject *self)
{
    PyObject *items = PyList_New(0);
    if (items == NULL)
        return -1;
    Py_XSETREF(self->items, items);
    self->audio_since_video = 0;
    self->has_keyframe = 0;
    return 0;
}

static int
gop_add_c(GopObject *self, PyObject *item, int is_video, int is_keyframe)
{
    if (!self->enabled)
        return 0;
    if (is_video) {
        self->audio_since_video = 0;
        if (is_keyframe) {
            PyObject *items = PyList_New(0);
            if (items == NULL)
                return -1;
            Py_XSETREF(self->items, items);
            self->has_keyframe = 1;
        }
    } else {
        self->audio_since_video += 1;
        if (self->audio_since_video > PURE_AUDIO_LIMIT && gop_clear_c(self) < 0)
            return -1;
    }
    if (!PyList_Check(self->items)) {
        PyErr_SetString(PyExc_TypeError, "GopCache.items must be a list");
        return -1;
    }
    if (self->max_frames && PyList_GET_SIZE(self->items) >= self->max_frames
            && gop_clear_c(self) < 0)
        return -1;
    return PyList_Append(self->items, item);
}

static PyObject *
gop_add(GopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "add(item, is_video, is_keyframe)");
        return NULL;
    }
    int v = PyObject_IsTrue(args[1]), k = PyObject_IsTrue(args[2]);
    if (v < 0 || k < 0 || gop_add_c(self, args[0], v, k) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
gop_clear(GopObject *self, PyObject *unused)
{
    if (gop_clear_c(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
gop_get_enabled(GopObject *self, void *closure)
{
    return PyBool_FromLong(self->enabled);
}

static int
gop_set_enabled(GopObject *self, PyObject *value, void *closure)
{
    int v = value == NULL ? 0 : PyObject_IsTrue(value);
    if (v < 0)
        return -1;
    self->enabled = (char)v;
    return 0;
}

static PyMethodDef gop_methods[] = {
    {"add", (PyCFunction)(void (*)(void))gop_add, METH_FASTCALL, "add(item, is_video, is_keyframe)"},
    {"clear", (PyCFunction)gop_clear, METH_NOARGS, "drop the cached GOP"},
    {NULL}
};

static PyMemberDef gop_members[] = {
    {"items", T_OBJECT_EX, offsetof(GopObject, items), 0, NULL},
    {"max_frames", T_LONGLONG, offsetof(GopObject, max_frames), 0, NULL},
    {"audio_since_video", T_LONGLONG, offsetof(GopObject, audio_since_video), 0, NULL},
    {"has_keyframe", T_BOOL, offsetof(GopObject, has_keyframe), 0, NULL},
    {NULL}
};

static PyGetSetDef gop_getset[] = {
    {"enabled", (getter)gop_get_enabled, (setter)gop_set_enabled, NULL, NULL},
    {NULL}
};

static PyTypeObject GopType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lib.server.core._sourcec.GopCache",
    .tp_basicsize = sizeof(GopObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "lib.media.gop.GopCache in C",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)gop_init,
    .tp_dealloc = (destructor)gop_dealloc,
    .tp_methods = gop_methods,
    .tp_members = gop_members,
    .tp_getset = gop_getset,
};

/* ------------------------------------------------------------------ SharedMessage */

typedef struct {
    PyObject_HEAD
    PyObject *payload;
    PyObject *frame;           /* NULL: not parsed yet */
    PyObject *rtmp;            /* NULL: not encoded yet */
    PyObject *flv;
    long long timestamp, wire_ts, chunk_size, chain, delta;
    int type_id, csid;
    char is_keyframe, is_sequence_header;
} MessageObject;

static PyTypeObject MessageType;

/* lib.media.frame.quick_facts on a buffer: 1 = known (*key, *sh set), 0 = a full parse is needed */
static int
quick_facts(int type_id, const unsigned char *p, Py_ssize_t n, char *key, char *sh)
{
    if (n == 0)
        return 0;
    unsigned first = p[0];
    if (type_id == MSG_VIDEO) {
        if (first & 0x80)
            return 0;
        unsigned codec_id = first & 0x0F;
        if (codec_id != 7 && codec_id != 12) {
            *key = (first >> 4) == 1;
            *sh = 0;
            return 1;
        }
        if (n < 2 || p[1] > 2) {
            *key = *sh = 0;
            return 1;
        }
        *key = (first >> 4) == 1 && p[1] == 1;
        *sh = p[1] == 0;
        return 1;
    }
    if (type_id == MSG_AUDIO) {
        if ((first >> 4) == 9)
            return 0;
        *key = 0;
        *sh = (first >> 4) == 10 && n >= 2 && p[1] == 0;
        return 1;
    }
    return 0;
}

static int
csid_of(int type_id)
{
    return type_id == MSG_AUDIO ? CSID_AUDIO : type_id == MSG_VIDEO ? CSID_VIDEO : CSID_DATA;
}

/* Facts from a parsed frame (None: data): as the reference's two lines. */
static int
facts_from_frame(MessageObject *m, PyObject *frame)
{
    m->is_keyframe = m->is_sequence_header = 0;
    if (frame == Py_None)
        return 0;
    int v;
    if (m->type_id == MSG_VIDEO) {
        PyObject *k = PyObject_GetAttr(frame, str_is_keyframe);
        if (k == NULL)
            return -1;
        v = PyObject_IsTrue(k);
        Py_DECREF(k);
        if (v < 0)
            return -1;
        m->is_keyframe = (char)v;
    }
    PyObject *s = PyObject_GetAttr(frame, str_is_sequence_header);
    if (s == NULL)
        return -1;
    v = PyObject_IsTrue(s);
    Py_DECREF(s);
    if (v < 0)
        return -1;
    m->is_sequence_header = (char)v;
    return 0;
}

static MessageObject *
message_make(int type_id, long long timestamp, PyObject *payload, long long chunk_size,
             long long wire_ts, PyObject *frame, PyObject *facts)
{
    MessageObject *m = PyObject_New(MessageObject, &MessageType);
    if (m == NULL)
        return NULL;
    m->payload = Py_NewRef(payload);
    m->frame = m->rtmp = m->flv = NULL;
    m->type_id = type_id;
    m->csid = csid_of(type_id);
    m->chain = m->delta = -1;
    m->timestamp = timestamp;
    m->wire_ts = wire_ts;
    m->chunk_size = chunk_size;
    m->is_keyframe = m->is_sequence_header = 0;
    if (frame == NULL || frame == Py_None) {
        if (facts == NULL || facts == Py_None) {
            int known;
            if (PyBytes_CheckExact(payload)) {
                known = quick_facts(type_id, (const unsigned char *)PyBytes_AS_STRING(payload),
                                    PyBytes_GET_SIZE(payload), &m->is_keyframe,
                                    &m->is_sequence_header);
            } else {
                Py_buffer view;
                if (PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE) < 0)
                    goto fail;
                known = quick_facts(type_id, view.buf, view.len, &m->is_keyframe,
                                    &m->is_sequence_header);
                PyBuffer_Release(&view);
            }
            if (known)
                return m;
            frame = PyObject_CallFunction(ref_parse, "iO", type_id, payload);
            if (frame == NULL)
                goto fail;
            m->frame = frame;
            if (facts_from_frame(m, frame) < 0)
                goto fail;
            return m;
        }
        PyObject *seq = PySequence_Fast(facts, "facts must be (is_keyframe, is_sequence_header)");
        if (seq == NULL)
            goto fail;
        if (PySequence_Fast_GET_SIZE(seq) != 2) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "facts must be (is_keyframe, is_sequence_header)");
            goto fail;
        }
        int k = PyObject_IsTrue(PySequence_Fast_GET_ITEM(seq, 0));
        int s = PyObject_IsTrue(PySequence_Fast_GET_ITEM(seq, 1));
        Py_DECREF(seq);
        if (k < 0 || s < 0)
            goto fail;
        m->is_keyframe = (char)k;
        m->is_sequence_header = (char)s;
        return m;
    }
    m->frame = Py_NewRef(frame);
    if (facts_from_frame(m, frame) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}

static PyObject *
message_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"type_id", "timestamp", "payload", "chunk_size", "wire_ts", "frame",
                             "facts", NULL};
    int type_id;
    long long timestamp, chunk_size;
    PyObject *payload, *wire = Py_None, *frame = Py_None, *facts = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iLOL|OOO", kwlist, &type_id, &timestamp,
                                     &payload, &chunk_size, &wire, &frame, &facts))
        return NULL;
    long long wire_ts = timestamp;
    if (wire != Py_None) {
        wire_ts = PyLong_AsLongLong(wire);
        if (wire_ts == -1 && PyErr_Occurred())
            return NULL;
    }
    return (PyObject *)message_make(type_id, timestamp, payload, chunk_size, wire_ts, frame, facts);
}

static void
message_dealloc(MessageObject *m)
{
    Py_XDECREF(m->payload);
    Py_XDECREF(m->frame);
    Py_XDECREF(m->rtmp);
    Py_XDECREF(m->flv);
    PyObject_Free(m);
}

static PyObject *
message_get_frame(MessageObject *m, void *closure)
{
    if (m->frame == NULL) {
        m->frame = PyObject_CallFunction(ref_parse, "iO", m->type_id, m->payload);
        if (m->frame == NULL)
            return NULL;
    }
    return Py_NewRef(m->frame);
}

static Py_ssize_t
basic_header(unsigned char *out, int fmt, int csid)
{
    if (csid >= 2 && csid <= 63) {
        out[0] = (unsigned char)((fmt << 6) | csid);
        return 1;
    }
    if (csid >= 64 && csid <= 319) {
        out[0] = (unsigned char)(fmt << 6);
        out[1] = (unsigned char)(csid - 64);
        return 2;
    }
    out[0] = (unsigned char)((fmt << 6) | 1);
    out[1] = (unsigned char)((csid - 64) & 0xFF);
    out[2] = (unsigned char)(((csid - 64) >> 8) & 0xFF);
    return 3;
}

/* lib.rtmp.chunk.encode_delta_message */
static PyObject *
encode_delta(MessageObject *m)
{
    if (m->csid < 2 || m->csid > 65599 || m->chunk_size < 1 || m->delta >= EXTENDED
            || m->type_id < 0 || m->type_id > 255) {
        PyErr_SetString(PyExc_ValueError, "a fmt 1 message out of range");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(m->payload, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Py_ssize_t length = view.len, chunk = (Py_ssize_t)m->chunk_size;
    unsigned char cont[3];
    Py_ssize_t cont_len = basic_header(cont, 3, m->csid);
    Py_ssize_t pieces = length <= chunk ? 0 : (length - 1) / chunk;
    unsigned char head[10];
    Py_ssize_t n = basic_header(head, 1, m->csid);
    long long d = m->delta;
    head[n++] = (unsigned char)(d >> 16);
    head[n++] = (unsigned char)(d >> 8);
    head[n++] = (unsigned char)d;
    head[n++] = (unsigned char)(length >> 16);
    head[n++] = (unsigned char)(length >> 8);
    head[n++] = (unsigned char)length;
    head[n++] = (unsigned char)m->type_id;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n + length + pieces * cont_len);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    unsigned char *w = (unsigned char *)PyBytes_AS_STRING(out);
    const unsigned char *r = view.buf;
    memcpy(w, head, n);
    w += n;
    Py_ssize_t left = length;
    Py_ssize_t take = left < chunk ? left : chunk;
    memcpy(w, r, take);
    w += take;
    r += take;
    left -= take;
    while (left > 0) {
        memcpy(w, cont, cont_len);
        w += cont_len;
        take = left < chunk ? left : chunk;
        memcpy(w, r, take);
        w += take;
        r += take;
        left -= take;
    }
    PyBuffer_Release(&view);
    return out;
}

static PyObject *
message_rtmp_c(MessageObject *m)
{
    if (m->rtmp == NULL) {
        if (m->delta >= 0)
            m->rtmp = encode_delta(m);
        else
            m->rtmp = PyObject_CallFunction(ref_encode_message, "iilLOL", m->csid, m->type_id,
                                            stream_id, m->wire_ts, m->payload, m->chunk_size);
        if (m->rtmp == NULL)
            return NULL;
    }
    return m->rtmp;                /* borrowed */
}

/* lib.media.flv.tag */
static PyObject *
message_flv_c(MessageObject *m)
{
    if (m->flv == NULL) {
        Py_buffer view;
        if (PyObject_GetBuffer(m->payload, &view, PyBUF_SIMPLE) < 0)
            return NULL;
        Py_ssize_t size = view.len;
        PyObject *out = PyBytes_FromStringAndSize(NULL, 11 + size + 4);
        if (out == NULL) {
            PyBuffer_Release(&view);
            return NULL;
        }
        unsigned char *w = (unsigned char *)PyBytes_AS_STRING(out);
        unsigned long long ts = (unsigned long long)m->wire_ts & MASK32;
        w[0] = (unsigned char)m->type_id;
        w[1] = (unsigned char)(size >> 16);
        w[2] = (unsigned char)(size >> 8);
        w[3] = (unsigned char)size;
        w[4] = (unsigned char)(ts >> 16);
        w[5] = (unsigned char)(ts >> 8);
        w[6] = (unsigned char)ts;
        w[7] = (unsigned char)(ts >> 24);
        w[8] = w[9] = w[10] = 0;
        memcpy(w + 11, view.buf, size);
        unsigned long long prev = (unsigned long long)(size + 11) & MASK32;
        w += 11 + size;
        w[0] = (unsigned char)(prev >> 24);
        w[1] = (unsigned char)(prev >> 16);
        w[2] = (unsigned char)(prev >> 8);
        w[3] = (unsigned char)prev;
        PyBuffer_Release(&view);
        m->flv = out;
    }
    return m->flv;                 /* borrowed */
}

static PyObject *
message_get_rtmp(MessageObject *m, void *closure)
{
    PyObject *data = message_rtmp_c(m);
    return data == NULL ? NULL : Py_NewRef(data);
}

static PyObject *
message_get_flv(MessageObject *m, void *closure)
{
    PyObject *data = message_flv_c(m);
    return data == NULL ? NULL : Py_NewRef(data);
}

/* bytes_for(kind), borrowed */
static PyObject *
message_bytes_for_c(MessageObject *m, PyObject *kind)
{
    int is_rtmp = kind == str_rtmp;
    if (!is_rtmp) {
        is_rtmp = PyObject_RichCompareBool(kind, str_rtmp, Py_EQ);
        if (is_rtmp < 0)
            return NULL;
    }
    return is_rtmp ? message_rtmp_c(m) : message_flv_c(m);
}

static PyObject *
message_bytes_for(MessageObject *m, PyObject *kind)
{
    PyObject *data = message_bytes_for_c(m, kind);
    return data == NULL ? NULL : Py_NewRef(data);
}

static PyObject *
message_get_made_rtmp(MessageObject *m, void *closure)
{
    return Py_NewRef(m->rtmp == NULL ? Py_None : m->rtmp);
}

static PyObject *
message_get_made_flv(MessageObject *m, void *closure)
{
    return Py_NewRef(m->flv == NULL ? Py_None : m->flv);
}

static PyObject *
message_forget_bytes(MessageObject *m, PyObject *unused)
{
    Py_CLEAR(m->rtmp);
    Py_CLEAR(m->flv);
    Py_RETURN_NONE;
}

static PyMethodDef message_methods[] = {
    {"bytes_for", (PyCFunction)message_bytes_for, METH_O, "bytes_for(kind): rtmp or flv"},
    {"forget_bytes", (PyCFunction)message_forget_bytes, METH_NOARGS,
     "drop the encoded bytes (made again if asked)"},
    {NULL}
};

static PyMemberDef message_members[] = {
    {"type_id", T_INT, offsetof(MessageObject, type_id), 0, NULL},
    {"csid", T_INT, offsetof(MessageObject, csid), 0, NULL},
    {"timestamp", T_LONGLONG, offsetof(MessageObject, timestamp), 0, NULL},
    {"wire_ts", T_LONGLONG, offsetof(MessageObject, wire_ts), 0, NULL},
    {"chunk_size", T_LONGLONG, offsetof(MessageObject, chunk_size), 0, NULL},
    {"chain", T_LONGLONG, offsetof(MessageObject, chain), 0, NULL},
    {"delta", T_LONGLONG, offsetof(MessageObject, delta), 0, NULL},
    {"payload", T_OBJECT_EX, offsetof(MessageObject, payload), READONLY, NULL},
    {"is_keyframe", T_BOOL, offsetof(MessageObject, is_keyframe), 0, NULL},
    {"is_sequence_header", T_BOOL, offsetof(MessageObject, is_sequence_header), 0, NULL},
    {NULL}
};

static PyGetSetDef message_getset[] = {
    {"frame", (getter)message_get_frame, NULL, "the parsed media facts (parsed once)", NULL},
    {"rtmp", (getter)message_get_rtmp, NULL, "the shared RTMP chunks (encoded once)", NULL},
    {"flv", (getter)message_get_flv, NULL, "the FLV tag (built once)", NULL},
    {"_rtmp", (getter)message_get_made_rtmp, NULL, "the RTMP chunks if made, else None", NULL},
    {"_flv", (getter)message_get_made_flv, NULL, "the FLV tag if built, else None", NULL},
    {NULL}
};

static PyTypeObject MessageType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lib.server.core._sourcec.SharedMessage",
    .tp_basicsize = sizeof(MessageObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "lib.server.core.source.SharedMessage in C",
    .tp_new = message_new,
    .tp_dealloc = (destructor)message_dealloc,
    .tp_methods = message_methods,
    .tp_members = message_members,
    .tp_getset = message_getset,
};

/* ------------------------------------------------------------------ SourceCore */

typedef struct {
    PyObject_HEAD
    PyObject *jitter, *gop, *sinks, *consumers, *msgs, *kinds, *logs, *totals, *total_base,
        *chain_last, *chain_ts, *last_seq, *wake, *video_sh, *audio_sh;
    long long bytes_in, base, last_key_seq, last_abs_seq, video_frames, flushed_end, mw_msgs,
        chunk_size;
    char has_media, burst_fed;
} SourceObject;

#define SOURCE_OBJECTS(X) X(jitter) X(gop) X(sinks) X(consumers) X(msgs) X(kinds) X(logs) \
    X(totals) X(total_base) X(chain_last) X(chain_ts) X(last_seq) X(wake) X(video_sh) X(audio_sh)

static int
source_traverse(SourceObject *self, visitproc visit, void *arg)
{
#define VISIT(f) Py_VISIT(self->f);
    SOURCE_OBJECTS(VISIT)
#undef VISIT
    return 0;
}

static int
source_clear(SourceObject *self)
{
#define CLEAR(f) Py_CLEAR(self->f);
    SOURCE_OBJECTS(CLEAR)
#undef CLEAR
    return 0;
}

static void
source_dealloc(SourceObject *self)
{
    PyObject_GC_UnTrack(self);
    source_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
call_python_path(SourceObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *method = PyObject_GetAttr((PyObject *)self, str_on_media_py);
    if (method == NULL)
        return NULL;
    PyObject *res = PyObject_Vectorcall(method, args, nargsf, kwnames);
    Py_DECREF(method);
    return res;
}

/* dict[key] as an int, KeyError if missing */
static int
dict_int(PyObject *dict, PyObject *key, long long *out)
{
    if (!PyDict_Check(dict)) {
        PyErr_SetString(PyExc_TypeError, "expected a dict");
        return -1;
    }
    PyObject *v = PyDict_GetItemWithError(dict, key);
    if (v == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, key);
        return -1;
    }
    *out = PyLong_AsLongLong(v);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static int
dict_set_int(PyObject *dict, PyObject *key, long long value)
{
    PyObject *v = PyLong_FromLongLong(value);
    if (v == NULL)
        return -1;
    int rc = PyDict_SetItem(dict, key, v);
    Py_DECREF(v);
    return rc;
}

static int
source_log_append(SourceObject *self, MessageObject *msg)
{
    PyObject *kind, *count;
    Py_ssize_t pos = 0;
    if (!PyDict_Check(self->kinds) || !PyDict_Check(self->logs) || !PyDict_Check(self->totals)
            || !PyDict_Check(self->total_base)) {
        PyErr_SetString(PyExc_TypeError, "a source's kinds, logs and totals must be dicts");
        return -1;
    }
    while (PyDict_Next(self->kinds, &pos, &kind, &count)) {
        PyObject *data = message_bytes_for_c(msg, kind);
        if (data == NULL)
            return -1;
        PyObject *log = PyDict_GetItemWithError(self->logs, kind);
        PyObject *tot = log == NULL ? NULL : PyDict_GetItemWithError(self->totals, kind);
        if (tot == NULL || !PyList_Check(log) || !PyList_Check(tot)) {
            if (!PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, kind);
            return -1;
        }
        if (PyList_Append(log, data) < 0)
            return -1;
        PyObject *last;
        Py_ssize_t n = PyList_GET_SIZE(tot);
        if (n)
            last = PyList_GET_ITEM(tot, n - 1);
        else {
            last = PyDict_GetItemWithError(self->total_base, kind);
            if (last == NULL) {
                if (!PyErr_Occurred())
                    PyErr_SetObject(PyExc_KeyError, kind);
                return -1;
            }
        }
        long long before = PyLong_AsLongLong(last);
        if (before == -1 && PyErr_Occurred())
            return -1;
        PyObject *after = PyLong_FromLongLong(before + PyBytes_GET_SIZE(data));
        if (after == NULL)
            return -1;
        int rc = PyList_Append(tot, after);
        Py_DECREF(after);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Every field the media path uses is set, the jitter and GOP cache are this module's own:
 * otherwise (a source not made by Source.__init__, a swapped part) Python does the work. */
static int
set_up_for_c(SourceObject *self)
{
    return self->jitter != NULL && Py_IS_TYPE(self->jitter, &JitterType)
        && self->gop != NULL && Py_IS_TYPE(self->gop, &GopType)
        && self->msgs != NULL && self->chain_last != NULL && self->chain_ts != NULL
        && self->last_seq != NULL && self->sinks != NULL && self->consumers != NULL
        && self->kinds != NULL && self->logs != NULL && self->totals != NULL
        && self->total_base != NULL && self->wake != NULL;
}

/* on_media(type_id, timestamp, payload, frame=None, facts=None): see Source._on_media_py */
static PyObject *
source_on_media(SourceObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL || nargs < 3 || nargs > 5 || !self->has_media || !PyLong_Check(args[0])
            || !set_up_for_c(self))
        return call_python_path(self, args, nargsf, kwnames);
    int type_id = (int)PyLong_AsLong(args[0]);
    if (type_id != MSG_AUDIO && type_id != MSG_VIDEO)
        return call_python_path(self, args, nargsf, kwnames);
    PyObject *payload = args[2];
    PyObject *frame = nargs > 3 ? args[3] : Py_None;
    PyObject *facts = nargs > 4 ? args[4] : Py_None;
    Py_ssize_t size = PyObject_Length(payload);
    if (size < 0)
        return NULL;
    long long ts_in = PyLong_AsLongLong(args[1]);
    if (ts_in == -1 && PyErr_Occurred())
        return NULL;
    self->bytes_in += size;
    long long ts = jitter_correct_c((JitterObject *)self->jitter, ts_in);
    MessageObject *msg = message_make(type_id, ts, payload, self->chunk_size, ts, frame, facts);
    if (msg == NULL)
        return NULL;
    PyObject *result = NULL;
    PyObject *cs = PyLong_FromLong(msg->csid);
    if (cs == NULL)
        goto done;
    long long n, prev_ts = 0;
    if (dict_int(self->chain_last, cs, &n) < 0)
        goto done;
    msg->chain = n + 1;
    if (dict_set_int(self->chain_last, cs, n + 1) < 0)
        goto done;
    if (!PyDict_Check(self->chain_ts)) {
        PyErr_SetString(PyExc_TypeError, "expected a dict");
        goto done;
    }
    PyObject *prev = PyDict_GetItemWithError(self->chain_ts, cs);
    if (prev == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, cs);
        goto done;
    }
    int has_prev = prev != Py_None;
    if (has_prev) {
        prev_ts = PyLong_AsLongLong(prev);
        if (prev_ts == -1 && PyErr_Occurred())
            goto done;
    }
    if (dict_set_int(self->chain_ts, cs, ts) < 0)
        goto done;
    if (has_prev && ts - prev_ts >= 0 && ts - prev_ts < EXTENDED)
        msg->delta = ts - prev_ts;
    if (!PyList_Check(self->msgs) || !PyList_Check(self->sinks) || !PyList_Check(self->consumers)) {
        PyErr_SetString(PyExc_TypeError, "a source's msgs, sinks and consumers must be lists");
        goto done;
    }
    int to_gop = 0, is_video = type_id == MSG_VIDEO;
    if (is_video) {
        self->video_frames += 1;
        if (msg->is_sequence_header) {
            Py_INCREF(msg);
            Py_XSETREF(self->video_sh, (PyObject *)msg);
        } else {
            if (msg->is_keyframe)
                self->last_key_seq = self->base + PyList_GET_SIZE(self->msgs);
            to_gop = 1;
        }
    } else if (msg->is_sequence_header) {
        Py_INCREF(msg);
        Py_XSETREF(self->audio_sh, (PyObject *)msg);
    } else {
        to_gop = 1;
    }
    if (to_gop) {
        int key = is_video && msg->is_keyframe;
        if (gop_add_c((GopObject *)self->gop, (PyObject *)msg, is_video, key) < 0)
            goto done;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(self->sinks); i++) {
        PyObject *sink = PyList_GET_ITEM(self->sinks, i);
        Py_INCREF(sink);
        PyObject *r = PyObject_CallMethodOneArg(sink, str_on_message, (PyObject *)msg);
        Py_DECREF(sink);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
    }
    if (PyList_GET_SIZE(self->consumers) == 0) {
        if (PyList_GET_SIZE(self->msgs)) {
            PyObject *r = PyObject_CallMethodNoArgs((PyObject *)self, str_clear_log);
            if (r == NULL)
                goto done;
            Py_DECREF(r);
        }
        self->base += 1;
        result = Py_NewRef(Py_None);
        goto done;
    }
    long long seq = self->base + PyList_GET_SIZE(self->msgs);
    if (msg->delta < 0)
        self->last_abs_seq = seq;
    if (msg->chain >= 0 && dict_set_int(self->last_seq, cs, seq) < 0)
        goto done;
    if (PyList_Append(self->msgs, (PyObject *)msg) < 0)
        goto done;
    if (source_log_append(self, msg) < 0)
        goto done;
    if (!self->burst_fed) {
        PyObject *is_set = PyObject_CallMethodNoArgs(self->wake, str_is_set);
        if (is_set == NULL)
            goto done;
        int set = PyObject_IsTrue(is_set);
        Py_DECREF(is_set);
        if (set < 0)
            goto done;
        if (!set) {
            long long fresh = self->base + PyList_GET_SIZE(self->msgs) - self->flushed_end;
            if (fresh == 1 || fresh > self->mw_msgs) {
                PyObject *r = PyObject_CallMethodNoArgs(self->wake, str_set);
                if (r == NULL)
                    goto done;
                Py_DECREF(r);
            }
        }
    }
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(cs);
    Py_DECREF(msg);
    return result;
}

static PyMethodDef source_methods[] = {
    {"on_media", (PyCFunction)(void (*)(void))source_on_media, METH_FASTCALL | METH_KEYWORDS,
     "on_media(type_id, timestamp, payload, frame=None, facts=None)"},
    {NULL}
};

#define OBJ(name, field) {name, T_OBJECT_EX, offsetof(SourceObject, field), 0, NULL}
#define LL(name, field) {name, T_LONGLONG, offsetof(SourceObject, field), 0, NULL}
static PyMemberDef source_members[] = {
    OBJ("jitter", jitter), OBJ("gop", gop), OBJ("sinks", sinks), OBJ("consumers", consumers),
    OBJ("msgs", msgs), OBJ("kinds", kinds), OBJ("logs", logs), OBJ("totals", totals),
    OBJ("total_base", total_base), OBJ("chain_last", chain_last), OBJ("_chain_ts", chain_ts),
    OBJ("last_seq", last_seq), OBJ("_wake", wake), OBJ("video_sh", video_sh),
    OBJ("audio_sh", audio_sh),
    LL("bytes_in", bytes_in), LL("base", base), LL("last_key_seq", last_key_seq),
    LL("last_abs_seq", last_abs_seq), LL("video_frames", video_frames),
    LL("_flushed_end", flushed_end), LL("mw_msgs", mw_msgs), LL("chunk_size", chunk_size),
    {"has_media", T_BOOL, offsetof(SourceObject, has_media), 0, NULL},
    {"burst_fed", T_BOOL, offsetof(SourceObject, burst_fed), 0, NULL},
    {NULL}
};
#undef OBJ
#undef LL

static PyTypeObject SourceType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lib.server.core._sourcec.SourceCore",
    .tp_basicsize = sizeof(SourceObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "the C fields and media path of lib.server.core.source.Source",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)source_dealloc,
    .tp_traverse = (traverseproc)source_traverse,
    .tp_clear = (inquiry)source_clear,
    .tp_methods = source_methods,
    .tp_members = source_members,
};

/* ------------------------------------------------------------------ module */

static PyObject *
set_references(PyObject *module, PyObject *args)
{
    PyObject *encode, *parse;
    long sid;
    if (!PyArg_ParseTuple(args, "OOl", &encode, &parse, &sid))
        return NULL;
    Py_INCREF(encode);
    Py_XSETREF(ref_encode_message, encode);
    Py_INCREF(parse);
    Py_XSETREF(ref_parse, parse);
    stream_id = sid;
    Py_RETURN_NONE;
}

/* forget_bytes(msgs, stop): msgs[:stop].forget_bytes(), for a list of SharedMessages */
static PyObject *
forget_bytes(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "forget_bytes(list, stop)");
        return NULL;
    }
    Py_ssize_t stop = PyLong_AsSsize_t(args[1]);
    if (stop == -1 && PyErr_Occurred())
        return NULL;
    PyObject *msgs = args[0];
    if (stop > PyList_GET_SIZE(msgs))
        stop = PyList_GET_SIZE(msgs);
    for (Py_ssize_t i = 0; i < stop; i++) {
        PyObject *item = PyList_GET_ITEM(msgs, i);
        if (Py_IS_TYPE(item, &MessageType)) {
            Py_CLEAR(((MessageObject *)item)->rtmp);
            Py_CLEAR(((MessageObject *)item)->flv);
        } else {
            PyObject *r = PyObject_CallMethod(item, "forget_bytes", NULL);
            if (r == NULL)
                return NULL;
            Py_DECREF(r);
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"forget_bytes", (PyCFunction)(void (*)(void))forget_bytes, METH_FASTCALL,
     "forget_bytes(msgs, stop): drop the encoded bytes of msgs[:stop]"},
    {"set_references", set_references, METH_VARARGS,
     "set_references(encode_message, parse, stream_id): the Python functions used"},
    {NULL}
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_sourcec", "A live source's per-message bookkeeping in C.", -1,
    module_methods,
};

PyMODINIT_FUNC
PyInit__sourcec(void)
{
#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL;
    INTERN(str_rtmp, "rtmp")
    INTERN(str_flv, "flv")
    INTERN(str_on_message, "on_message")
    INTERN(str_is_set, "is_set")
    INTERN(str_set, "set")
    INTERN(str_clear_log, "_clear_log")
    INTERN(str_on_media_py, "_on_media_py")
    INTERN(str_is_keyframe, "is_keyframe")
    INTERN(str_is_sequence_header, "is_sequence_header")
#undef INTERN
    if (PyType_Ready(&JitterType) < 0 || PyType_Ready(&GopType) < 0
            || PyType_Ready(&MessageType) < 0 || PyType_Ready(&SourceType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Jitter", (PyObject *)&JitterType) < 0
            || PyModule_AddObjectRef(m, "GopCache", (PyObject *)&GopType) < 0
            || PyModule_AddObjectRef(m, "SharedMessage", (PyObject *)&MessageType) < 0
            || PyModule_AddObjectRef(m, "SourceCore", (PyObject *)&SourceType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
