/* The PES -> 188-byte TS packets step of lib/media/ts.py in C: an optional accelerator.
 *
 * Rules:
 * - `packets(pid, cc, af, head, parts)` returns the TS packets of one PES whose bytes are
 *   `head` followed by every buffer of the list `parts`, exactly as the pure-Python
 *   TsMuxer._packetize (the reference) makes them from head + b"".join(parts): the first
 *   packet has payload_unit_start and, when `af` (the adaptation field's content after its
 *   length byte: flags, PCR) is not empty, that adaptation field; the last packet is filled up
 *   with adaptation-field stuffing (0xff); continuity counters run from `cc` (the caller adds
 *   the number of packets, len(result) // 188, to its counter).
 *   tests/test_ts_accel.py compares both on random inputs; tests/test_hls_golden.py runs the
 *   recorded streams through both.
 * - Arguments out of range (pid > 0x1fff, cc > 15, an adaptation field that does not fit one
 *   packet, parts not a list of bytes-like objects) raise ValueError/TypeError: no memory is
 *   written outside the result.
 * - Built by scripts/build_accel.py (no compiler: ts.py uses the reference). No IO, no clock.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define PACKET 188
#define PAYLOAD 184
#define STACK_PARTS 32

static PyObject *
ts_packets(PyObject *self, PyObject *args)
{
    int pid, cc;
    Py_buffer af, head;
    PyObject *parts;
    if (!PyArg_ParseTuple(args, "iiy*y*O!:packets", &pid, &cc, &af, &head, &PyList_Type, &parts))
        return NULL;
    PyObject *result = NULL;
    Py_buffer stack[STACK_PARTS];
    Py_buffer *bufs = stack;
    Py_ssize_t nparts = PyList_GET_SIZE(parts), got = 0;
    if (pid < 0 || pid > 0x1FFF || cc < 0 || cc > 15 || af.len > PAYLOAD - 2) {
        PyErr_SetString(PyExc_ValueError, "packets: pid, cc or adaptation field out of range");
        goto done;
    }
    if (nparts > STACK_PARTS) {
        bufs = PyMem_Malloc(sizeof(Py_buffer) * nparts);
        if (bufs == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    Py_ssize_t total = head.len;
    for (; got < nparts; got++) {
        if (PyObject_GetBuffer(PyList_GET_ITEM(parts, got), &bufs[got], PyBUF_SIMPLE) < 0)
            goto done;
        total += bufs[got].len;
    }
    Py_ssize_t room0 = af.len ? PAYLOAD - 1 - af.len : PAYLOAD;
    Py_ssize_t npk = total <= room0 ? 1 : 1 + (total - room0 + PAYLOAD - 1) / PAYLOAD;
    result = PyBytes_FromStringAndSize(NULL, npk * PACKET);
    if (result == NULL)
        goto done;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    /* the source cursor: head first, then the parts */
    const unsigned char *src = head.buf;
    Py_ssize_t left = head.len, next = 0, remaining = total;
    for (Py_ssize_t k = 0; k < npk; k++) {
        unsigned char *p = out + k * PACKET;
        Py_ssize_t room = k == 0 ? room0 : PAYLOAD;
        Py_ssize_t take = remaining < room ? remaining : room;
        Py_ssize_t stuffing = room - take;
        int field = (k == 0 && af.len) || stuffing;
        p[0] = 0x47;
        p[1] = (unsigned char)((k == 0 ? 0x40 : 0) | (pid >> 8));
        p[2] = (unsigned char)(pid & 0xFF);
        p[3] = (unsigned char)((field ? 0x30 : 0x10) | cc);
        cc = (cc + 1) & 0x0F;
        p += 4;
        if (k == 0 && af.len) {
            *p++ = (unsigned char)(af.len + stuffing);
            memcpy(p, af.buf, af.len);
            p += af.len;
            memset(p, 0xFF, stuffing);
            p += stuffing;
        } else if (stuffing == 1) {
            *p++ = 0;
        } else if (stuffing > 1) {
            *p++ = (unsigned char)(stuffing - 1);
            *p++ = 0;
            memset(p, 0xFF, stuffing - 2);
            p += stuffing - 2;
        }
        remaining -= take;
        while (take > 0) {
            while (left == 0) {          /* next non-empty source buffer (total counts them) */
                src = bufs[next].buf;
                left = bufs[next].len;
                next++;
            }
            Py_ssize_t n = take < left ? take : left;
            memcpy(p, src, n);
            p += n;
            src += n;
            left -= n;
            take -= n;
        }
    }
done:
    for (Py_ssize_t i = 0; i < got; i++)
        PyBuffer_Release(&bufs[i]);
    if (bufs != stack)
        PyMem_Free(bufs);
    PyBuffer_Release(&af);
    PyBuffer_Release(&head);
    return result;
}

static PyMethodDef methods[] = {
    {"packets", ts_packets, METH_VARARGS,
     "packets(pid, cc, af, head, parts) -> bytes: the TS packets of one PES (see lib/media/ts.py)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_tsc", "TS packetizer (optional accelerator of lib/media/ts.py)", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__tsc(void)
{
    return PyModule_Create(&module);
}
