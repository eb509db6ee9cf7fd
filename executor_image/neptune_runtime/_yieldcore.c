/* The yield point and the doorbell's express slot, in C (see yieldpoint.py and doorbell.py).
 *
 * Why C: a preemption is rare, so its path always runs cold, and on the VMs we measured every
 * distinct piece of interpreter code a cold path touches costs 5-50 us (a `len()` call 8 us, a
 * msgpack decode of a `run` 50 us after 20 ms of batch work). Here the per-record check is one
 * load of the doorbell bytes; the driver's copy of a preempting `run` into the slot (encode,
 * write, ring) and the executor's taking it (read, check, decode) are one call each, touching
 * a few cache lines instead of the interpreter's paths. The encoder and the decoder handle the
 * msgpack subset that JSON-like messages use, byte for byte as msgpack (tests compare them);
 * anything else is left to the socket, which msgpack itself encodes and decodes.
 *
 * One slot per process, so the state is global: the task running is the one at a yield point.
 *
 * The doorbell's page (4 KiB, shared with the driver's process on the same host; doorbell.py
 * has the same offsets):
 *   0       byte: a message was sent (the driver sets it, the executor clears it)
 *   1       byte: forewarned, a preempting `run` may follow (same)
 *   8..40   the executor's random token (doorbell.py)
 *   64..96  the express slot's header, struct Slot below: version (odd while being written),
 *           stream offset, send time (CLOCK_MONOTONIC ns), body length, adler32 of the body
 *   104     uint64: the last version the executor took
 *   128..   the body: msgpack, whose own integers are big-endian
 * Byte order: the header and the seen mark are in the host's native order (the C struct, no
 * padding), since both sides run on this host: doorbell.SLOT is struct "=QQQII" to match. Bytes
 * 0 and 1 are read together in one 16-bit load whose value is only compared with zero, so
 * their order does not matter. The page must be 8-byte aligned (an mmap is page-aligned): the
 * version, the seen mark and the bell word are accessed with atomic builtins.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define MAX_STRIDE (1LL << 20)
/* 1000 s: interval_ns (at most 1e12) times a stride (at most 2^20) stays far below 2^63 */
#define MAX_INTERVAL_US 1000000000LL
#define POLLS_PER_BELL_POLL 8 /* a driver ringing: the socket is polled once per this many */

/* The slot's layout, shared with doorbell.py (SLOT, SLOT_AT, BODY_AT, SEEN_AT, SIZE). */
#define SLOT_AT 64
#define SEEN_AT 104
#define BODY_AT 128
#define SIZE 4096
#define MAX_DEPTH 32
#define ALIGN 8

static struct {
    PyObject *on_signal;          /* called when the driver sent something */
    PyObject *on_forewarn;        /* called when the driver may preempt soon (byte 1) */
    Py_buffer bell;               /* the doorbell's mapping, held while installed */
    volatile uint8_t *bell_byte;  /* bytes 0 (a message) and 1 (forewarned); NULL: none */
    int fd;                       /* the socket to poll, -1 for none */
    long long stride, countdown;  /* records between tunes, and left until the next */
    long long interval_ns;        /* task time between tunes */
    long long last_tune_ns;
    long long max_gap_ns;         /* the longest time between two yield points, as tuned */
    long long fired_span_ns;      /* at the last signal: the time since the tune before it */
    int polls_left;
    int polls_per_poll;           /* tunes per socket poll: 1, or POLLS_PER_BELL_POLL */
    int requested;                /* request(): signal at the next yield point */
} S = {NULL, NULL, {0}, NULL, -1, MAX_STRIDE, MAX_STRIDE, 100000, 0, 0, 0, 1, 1, 0};

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* The handler is held for the call: it may install() another (or suspend the task, and the
 * hub install another meanwhile), which drops the state's reference while it runs. */
static int call(PyObject *handler) {
    if (handler == NULL)
        return 0;
    Py_INCREF(handler);
    PyObject *result = PyObject_CallNoArgs(handler);
    Py_DECREF(handler);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

/* `span`: the time since the tune before this signal. Well above the interval, the task ran no
 * yield point for a while (a collection, another thread's GIL, the CPU given to others), and
 * a preemption that came meanwhile waited for it: the executor reports it with the slowest. */
static int fire(long long span) {
    S.fired_span_ns = span;
    S.requested = 0;
    if (S.bell_byte != NULL)
        S.bell_byte[0] = S.bell_byte[1] = 0; /* before the handler reads: later ones ring */
    return call(S.on_signal);
}

/* The doorbell: byte 0 is a message, byte 1 a warning that one may follow (one load). */
static int ring(void) {
    if (S.bell_byte[0] || S.requested)
        return fire(now_ns() - S.last_tune_ns);
    S.bell_byte[1] = 0;
    if (call(S.on_forewarn) < 0)
        return -1;
    /* rung meanwhile: the handler stopped for it. The handler may have installed another
     * doorbell, or none: read the state's pointer again. */
    return S.bell_byte != NULL && S.bell_byte[0] ? fire(now_ns() - S.last_tune_ns) : 0;
}

/* The mean time of the records since the last tune (or switch), if it is the longest yet. */
static inline void note_gap(long long elapsed, long long records) {
    if (records > 0 && elapsed / records > S.max_gap_ns)
        S.max_gap_ns = elapsed / records;
}

/* Every `stride` records: adapt the stride to the interval, poll the socket. */
static int tune(void) {
    long long now = now_ns(), elapsed = now - S.last_tune_ns;
    S.last_tune_ns = now;
    /* `stride` records passed since the last tune: their mean time, exact when records are
     * coarse (the stride is then 1) and small when they are not, which is all it must show */
    note_gap(elapsed, S.stride);
    if (elapsed > 0) {
        /* Growing at most 2x per tune, so that a run of fast records does not overshoot;
         * shrinking at once, so that coarse records are polled for after each one (a mean
         * over the stride: one slow record among fast ones barely moves it). */
        long long wanted = (long long)((double)S.stride * S.interval_ns / elapsed);
        long long high = S.stride * 2 < MAX_STRIDE ? S.stride * 2 : MAX_STRIDE;
        S.stride = wanted < 1 ? 1 : wanted > high ? high : wanted;
    }
    S.countdown = S.stride;
    if (S.requested)
        return fire(elapsed);
    if (S.fd >= 0 && --S.polls_left <= 0) {
        S.polls_left = S.polls_per_poll;
        struct pollfd p = {S.fd, POLLIN, 0};
        if (poll(&p, 1, 0) > 0)
            return fire(elapsed);
    }
    return 0;
}

/* Bytes 0 and 1 in one load (relaxed: it only has to be a fresh, whole read of the word that
 * the driver's process writes; on x86-64 a plain 16-bit load). */
static inline uint16_t bell_word(void) {
    return __atomic_load_n((const uint16_t *)(const void *)S.bell_byte, __ATOMIC_RELAXED);
}

static inline int yield_point(void) {
    if (S.bell_byte != NULL && bell_word())
        return ring();
    if (--S.countdown > 0)
        return 0;
    return tune();
}

/* The doorbell's page, writable and whole: 0, or -1 with an exception set. */
static int get_page(PyObject *mapping, Py_buffer *view) {
    if (PyObject_GetBuffer(mapping, view, PyBUF_WRITABLE) < 0)
        return -1;
    if (view->len < SIZE) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "the doorbell mapping is too small");
        return -1;
    }
    if ((uintptr_t)view->buf % ALIGN != 0) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "the doorbell mapping is not 8-byte aligned");
        return -1;
    }
    return 0;
}

/* -- install, checkpoint, switched_in, request ------------------------------------------- */

static PyObject *install(PyObject *module, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"on_signal", "fd", "interval_us", "bell", "on_forewarn",
                            "sparse_polls", NULL};
    PyObject *on_signal = Py_None, *bell = Py_None, *on_forewarn = Py_None, *interval = NULL;
    int fd = -1, sparse = 1;
    long long interval_us = 100;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OiOOOp:install", names, &on_signal, &fd,
                                     &interval, &bell, &on_forewarn, &sparse))
        return NULL;
    if ((on_signal != Py_None && !PyCallable_Check(on_signal)) ||
        (on_forewarn != Py_None && !PyCallable_Check(on_forewarn))) {
        PyErr_SetString(PyExc_TypeError, "on_signal and on_forewarn must be callable or None");
        return NULL;
    }
    if (interval != NULL) {
        int overflow;
        interval_us = PyLong_AsLongLongAndOverflow(interval, &overflow);
        if (interval_us == -1 && PyErr_Occurred())
            return NULL;
        if (overflow)
            interval_us = -1; /* out of range either way */
    }
    if (interval_us < 1 || interval_us > MAX_INTERVAL_US) {
        /* bounded before it becomes nanoseconds and is multiplied by a stride */
        PyErr_Format(PyExc_ValueError, "interval_us must be between 1 and %lld (%lld s)",
                     MAX_INTERVAL_US, MAX_INTERVAL_US / 1000000);
        return NULL;
    }
    Py_buffer view = {0};
    if (bell != Py_None && get_page(bell, &view) < 0)
        return NULL;
    /* the new state first, then the old one let go: releasing or dropping it may run code */
    Py_buffer old_bell = S.bell;
    int had_bell = S.bell_byte != NULL;
    PyObject *old_signal = S.on_signal, *old_forewarn = S.on_forewarn;
    S.bell = view;
    S.bell_byte = bell != Py_None ? (volatile uint8_t *)view.buf : NULL;
    S.on_signal = on_signal == Py_None ? NULL : Py_NewRef(on_signal);
    S.on_forewarn = on_forewarn == Py_None ? NULL : Py_NewRef(on_forewarn);
    S.fd = fd;
    S.interval_ns = interval_us * 1000;
    /* outside an executor yield points (almost) never tune; inside, the first one tunes */
    S.stride = S.countdown = S.on_signal == NULL ? MAX_STRIDE : 1;
    S.polls_left = 1;
    /* A driver that rings for every message leaves the socket polls for a large message's
     * tail; our own watcher (_bellwatch.c) may wake late, so the polls stay as without one. */
    S.polls_per_poll = bell != Py_None && sparse ? POLLS_PER_BELL_POLL : 1;
    S.requested = 0;
    S.last_tune_ns = now_ns();
    if (had_bell)
        PyBuffer_Release(&old_bell);
    Py_XDECREF(old_signal);
    Py_XDECREF(old_forewarn);
    Py_RETURN_NONE;
}

static PyObject *checkpoint(PyObject *module, PyObject *unused) {
    if (yield_point() < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Returns the longest gap between yield points since the last call, and starts over: the
 * executor gives it to the task that ran since then. */
static PyObject *switched_in(PyObject *module, PyObject *unused) {
    long long now = now_ns();
    note_gap(now - S.last_tune_ns, S.stride - S.countdown); /* the records since the last tune */
    long long gap = S.max_gap_ns;
    S.max_gap_ns = 0;
    S.last_tune_ns = now; /* suspended time is not task time */
    S.countdown = S.stride; /* and a window starts here, so that its records are counted */
    return PyLong_FromLongLong(gap);
}

static PyObject *request(PyObject *module, PyObject *unused) {
    S.requested = 1; /* safe from a signal handler: the next tune sees it */
    S.countdown = 0;
    Py_RETURN_NONE;
}

static PyObject *stride(PyObject *module, PyObject *unused) {
    return PyLong_FromLongLong(S.stride);
}

static PyObject *fired_span(PyObject *module, PyObject *unused) {
    return PyLong_FromLongLong(S.fired_span_ns);
}

/* -- yielding(records): an iterator whose every next() is a yield point ------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *it;
} Yielding;

static int yielding_traverse(Yielding *self, visitproc visit, void *arg) {
    Py_VISIT(self->it);
    return 0;
}

static int yielding_clear(Yielding *self) {
    Py_CLEAR(self->it);
    return 0;
}

static void yielding_dealloc(Yielding *self) {
    PyObject_GC_UnTrack(self);
    yielding_clear(self);
    PyObject_GC_Del(self);
}

static PyObject *yielding_next(Yielding *self) {
    if (self->it == NULL)
        return NULL;
    PyObject *item = Py_TYPE(self->it)->tp_iternext(self->it);
    if (item == NULL)
        return NULL;
    if (yield_point() < 0) {
        Py_DECREF(item);
        return NULL;
    }
    return item;
}

static PyTypeObject YieldingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "neptune_runtime._yieldcore.yielding",
    .tp_basicsize = sizeof(Yielding),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "yielding(records): iterate over records; every next() is a yield point",
    .tp_dealloc = (destructor)yielding_dealloc,
    .tp_traverse = (traverseproc)yielding_traverse,
    .tp_clear = (inquiry)yielding_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)yielding_next,
};

static PyObject *yielding(PyObject *module, PyObject *records) {
    PyObject *it = PyObject_GetIter(records);
    if (it == NULL)
        return NULL;
    Yielding *self = PyObject_GC_New(Yielding, &YieldingType);
    if (self == NULL) {
        Py_DECREF(it);
        return NULL;
    }
    self->it = it;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

/* -- the express slot --------------------------------------------------------------------- */

/* A msgpack subset (what JSON-like messages use: nil, bool, int, float, str, bin, array, map).
 * Anything else (ext types, a bad length) returns NULL without an exception set: the socket
 * then serves the same frame, decoded by msgpack itself. */
typedef struct {
    const uint8_t *p, *end;
} Reader;

static int take(Reader *r, size_t n, const uint8_t **at) {
    if ((size_t)(r->end - r->p) < n)
        return 0;
    *at = r->p;
    r->p += n;
    return 1;
}

static uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static PyObject *decode(Reader *r, int depth);

static int sized(Reader *r, int n, uint64_t *size) {
    const uint8_t *at;
    if (!take(r, (size_t)n, &at))
        return 0;
    *size = be(at, n);
    return 1;
}

static PyObject *decode_str(Reader *r, uint64_t n, int text) {
    const uint8_t *at;
    if (!take(r, (size_t)n, &at))
        return NULL;
    return text ? PyUnicode_DecodeUTF8((const char *)at, (Py_ssize_t)n, "strict")
                : PyBytes_FromStringAndSize((const char *)at, (Py_ssize_t)n);
}

static PyObject *decode_array(Reader *r, uint64_t n, int depth) {
    if (n > (uint64_t)(r->end - r->p))
        return NULL; /* every element takes at least a byte */
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (uint64_t i = 0; list != NULL && i < n; i++) {
        PyObject *item = decode(r, depth + 1);
        if (item == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

static PyObject *decode_map(Reader *r, uint64_t n, int depth) {
    if (n > (uint64_t)(r->end - r->p))
        return NULL;
    PyObject *dict = PyDict_New();
    for (uint64_t i = 0; dict != NULL && i < n; i++) {
        PyObject *key = decode(r, depth + 1);
        PyObject *value = key == NULL ? NULL : decode(r, depth + 1);
        if (value == NULL || PyDict_SetItem(dict, key, value) < 0)
            Py_CLEAR(dict);
        Py_XDECREF(key);
        Py_XDECREF(value);
    }
    return dict;
}

static PyObject *decode(Reader *r, int depth) {
    const uint8_t *at;
    uint64_t n;
    if (depth > MAX_DEPTH || !take(r, 1, &at))
        return NULL;
    uint8_t c = *at;
    if (c <= 0x7f)
        return PyLong_FromLong(c);
    if (c >= 0xe0)
        return PyLong_FromLong((int8_t)c);
    if ((c & 0xe0) == 0xa0)
        return decode_str(r, c & 0x1f, 1);
    if ((c & 0xf0) == 0x90)
        return decode_array(r, c & 0x0f, depth);
    if ((c & 0xf0) == 0x80)
        return decode_map(r, c & 0x0f, depth);
    switch (c) {
    case 0xc0: return Py_NewRef(Py_None);
    case 0xc2: return Py_NewRef(Py_False);
    case 0xc3: return Py_NewRef(Py_True);
    case 0xcc: case 0xcd: case 0xce: case 0xcf: {
        int width = 1 << (c - 0xcc);
        if (!take(r, (size_t)width, &at))
            return NULL;
        return PyLong_FromUnsignedLongLong(be(at, width));
    }
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int width = 1 << (c - 0xd0);
        if (!take(r, (size_t)width, &at))
            return NULL;
        uint64_t v = be(at, width);
        int shift = 64 - 8 * width; /* sign-extend */
        return PyLong_FromLongLong((long long)(v << shift) >> shift);
    }
    case 0xca: {
        if (!take(r, 4, &at))
            return NULL;
        uint32_t bits = (uint32_t)be(at, 4);
        float f;
        memcpy(&f, &bits, 4);
        return PyFloat_FromDouble(f);
    }
    case 0xcb: {
        if (!take(r, 8, &at))
            return NULL;
        uint64_t bits = be(at, 8);
        double d;
        memcpy(&d, &bits, 8);
        return PyFloat_FromDouble(d);
    }
    case 0xd9: case 0xda: case 0xdb:
        return sized(r, 1 << (c - 0xd9), &n) ? decode_str(r, n, 1) : NULL;
    case 0xc4: case 0xc5: case 0xc6:
        return sized(r, 1 << (c - 0xc4), &n) ? decode_str(r, n, 0) : NULL;
    case 0xdc: case 0xdd:
        return sized(r, 2 << (c - 0xdc), &n) ? decode_array(r, n, depth) : NULL;
    case 0xde: case 0xdf:
        return sized(r, 2 << (c - 0xde), &n) ? decode_map(r, n, depth) : NULL;
    default:
        return NULL; /* ext types and the unused 0xc1 */
    }
}

/* A msgpack encoder for the same subset, making the bytes msgpack.packb(use_bin_type=True)
 * makes. 0: done; -1: not encodable here (no exception set) or too big. */
typedef struct {
    uint8_t *p, *end;
} Writer;

static int put(Writer *w, const void *data, size_t n) {
    if ((size_t)(w->end - w->p) < n)
        return -1;
    memcpy(w->p, data, n);
    w->p += n;
    return 0;
}

static int put_head(Writer *w, uint8_t code, uint64_t value, int width) {
    uint8_t head[9];
    head[0] = code;
    for (int i = 0; i < width; i++)
        head[1 + i] = (uint8_t)(value >> (8 * (width - 1 - i)));
    return put(w, head, (size_t)width + 1);
}

/* fixed (a fix* code with the size in it) below `small`, else 8-, 16- or 32-bit sizes */
static int put_sized(Writer *w, uint64_t n, uint8_t fixed, uint64_t small, uint8_t code8,
                     uint8_t code16, uint8_t code32) {
    if (n < small)
        return put_head(w, (uint8_t)(fixed | n), 0, 0);
    if (code8 && n <= 0xff)
        return put_head(w, code8, n, 1);
    if (n <= 0xffff)
        return put_head(w, code16, n, 2);
    return n <= 0xffffffffULL ? put_head(w, code32, n, 4) : -1;
}

static int encode(Writer *w, PyObject *o, int depth) {
    if (depth > MAX_DEPTH)
        return -1;
    if (o == Py_None)
        return put_head(w, 0xc0, 0, 0);
    if (o == Py_True || o == Py_False)
        return put_head(w, o == Py_True ? 0xc3 : 0xc2, 0, 0);
    if (PyLong_Check(o)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow > 0) {
            unsigned long long u = PyLong_AsUnsignedLongLong(o);
            if (u == (unsigned long long)-1 && PyErr_Occurred()) {
                PyErr_Clear();
                return -1;
            }
            return put_head(w, 0xcf, u, 8);
        }
        if (overflow < 0 || (v == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return -1;
        }
        if (v >= 0) {
            if (v < 128) return put_head(w, (uint8_t)v, 0, 0);
            if (v <= 0xff) return put_head(w, 0xcc, (uint64_t)v, 1);
            if (v <= 0xffff) return put_head(w, 0xcd, (uint64_t)v, 2);
            if (v <= 0xffffffffLL) return put_head(w, 0xce, (uint64_t)v, 4);
            return put_head(w, 0xcf, (uint64_t)v, 8);
        }
        if (v >= -32) return put_head(w, (uint8_t)(int8_t)v, 0, 0);
        if (v >= -128) return put_head(w, 0xd0, (uint64_t)v & 0xff, 1);
        if (v >= -32768) return put_head(w, 0xd1, (uint64_t)v & 0xffff, 2);
        if (v >= -2147483648LL) return put_head(w, 0xd2, (uint64_t)v & 0xffffffff, 4);
        return put_head(w, 0xd3, (uint64_t)v, 8);
    }
    if (PyFloat_Check(o)) {
        double d = PyFloat_AS_DOUBLE(o);
        uint64_t bits;
        memcpy(&bits, &d, 8);
        return put_head(w, 0xcb, bits, 8);
    }
    if (PyUnicode_Check(o)) {
        Py_ssize_t n;
        const char *text = PyUnicode_AsUTF8AndSize(o, &n);
        if (text == NULL) {
            PyErr_Clear();
            return -1;
        }
        if (put_sized(w, (uint64_t)n, 0xa0, 32, 0xd9, 0xda, 0xdb) < 0)
            return -1;
        return put(w, text, (size_t)n);
    }
    if (PyBytes_Check(o)) {
        Py_ssize_t n = PyBytes_GET_SIZE(o);
        if (put_sized(w, (uint64_t)n, 0, 0, 0xc4, 0xc5, 0xc6) < 0)
            return -1;
        return put(w, PyBytes_AS_STRING(o), (size_t)n);
    }
    if (PyList_Check(o) || PyTuple_Check(o)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
        if (put_sized(w, (uint64_t)n, 0x90, 16, 0, 0xdc, 0xdd) < 0)
            return -1;
        for (Py_ssize_t i = 0; i < n; i++)
            if (encode(w, PySequence_Fast_GET_ITEM(o, i), depth + 1) < 0)
                return -1;
        return 0;
    }
    if (PyDict_Check(o)) {
        if (put_sized(w, (uint64_t)PyDict_GET_SIZE(o), 0x80, 16, 0, 0xde, 0xdf) < 0)
            return -1;
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(o, &pos, &key, &value))
            if (encode(w, key, depth + 1) < 0 || encode(w, value, depth + 1) < 0)
                return -1;
        return 0;
    }
    return -1;
}

/* zlib's adler32 (tests compare it with zlib.adler32) */
static uint32_t adler32(const uint8_t *p, size_t n) {
    uint32_t a = 1, b = 0;
    while (n > 0) {
        size_t chunk = n < 5552 ? n : 5552; /* no overflow before the modulo */
        n -= chunk;
        while (chunk--) {
            a += *p++;
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    return b << 16 | a;
}

/* The slot's header at SLOT_AT, in native byte order (see the top of this file). */
typedef struct {
    uint64_t version, offset, sent_ns;
    uint32_t length, checksum;
} Slot;
_Static_assert(sizeof(Slot) == 32, "the slot header is doorbell.SLOT, without padding");
_Static_assert(SLOT_AT + sizeof(Slot) <= SEEN_AT && SEEN_AT + 8 <= BODY_AT, "the page layout");
_Static_assert(SLOT_AT % ALIGN == 0 && SEEN_AT % ALIGN == 0, "aligned for the atomic builtins");

/* take_express(mapping): (offset, sent_ns, message) if the slot holds a new, whole message
 * that decodes, once; None otherwise (nothing new, rewritten while read, or not decodable
 * here: the socket has the same message). */
static PyObject *take_express(PyObject *module, PyObject *mapping) {
    Py_buffer view;
    if (get_page(mapping, &view) < 0)
        return NULL;
    PyObject *result = NULL;
    uint8_t *base = view.buf;
    uint64_t *seen = (uint64_t *)(base + SEEN_AT);
    Slot slot;
    uint8_t body[SIZE - BODY_AT];
    /* a seqlock read: the version first, then the rest, then the version again */
    slot.version = __atomic_load_n((uint64_t *)(base + SLOT_AT), __ATOMIC_ACQUIRE);
    memcpy((uint8_t *)&slot + sizeof slot.version, base + SLOT_AT + sizeof slot.version,
           sizeof slot - sizeof slot.version);
    if (slot.version == *seen || slot.version & 1 || slot.length > sizeof body)
        goto none;
    memcpy(body, base + BODY_AT, slot.length);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n((uint64_t *)(base + SLOT_AT), __ATOMIC_RELAXED) != slot.version ||
        adler32(body, slot.length) != slot.checksum)
        goto none; /* rewritten while we read: the socket has it */
    *seen = slot.version;
    Reader reader = {body, body + slot.length};
    PyObject *message = decode(&reader, 0);
    if (message == NULL || reader.p != reader.end || !PyDict_Check(message)) {
        Py_XDECREF(message);
        PyErr_Clear();
        goto none;
    }
    result = Py_BuildValue("(KKN)", (unsigned long long)slot.offset,
                           (unsigned long long)slot.sent_ns, message);
    goto done;
none:
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&view);
    return result;
}

/* express(mapping, message, offset): encode `message` into the slot as the frame that starts
 * at stream `offset`, stamp it and ring; False if it cannot be encoded here or does not fit
 * (then the socket alone carries it). The driver is the slot's only writer. */
static PyObject *express(PyObject *module, PyObject *args) {
    PyObject *mapping, *message;
    unsigned long long offset;
    if (!PyArg_ParseTuple(args, "OO!K:express", &mapping, &PyDict_Type, &message, &offset))
        return NULL;
    Py_buffer view;
    if (get_page(mapping, &view) < 0)
        return NULL;
    PyObject *result = NULL;
    uint8_t *base = view.buf, body[SIZE - BODY_AT];
    Writer writer = {body, body + sizeof body};
    if (encode(&writer, message, 0) < 0) {
        result = Py_NewRef(Py_False);
        goto done;
    }
    uint64_t *version = (uint64_t *)(base + SLOT_AT);
    Slot slot = {*version + 2, offset, 0, (uint32_t)(writer.p - body), 0};
    slot.checksum = adler32(body, slot.length);
    __atomic_store_n(version, slot.version - 1, __ATOMIC_RELAXED); /* odd: being written */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(base + BODY_AT, body, slot.length);
    slot.sent_ns = (uint64_t)now_ns();
    memcpy(base + SLOT_AT + sizeof slot.version, (uint8_t *)&slot + sizeof slot.version,
           sizeof slot - sizeof slot.version);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(version, slot.version, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    base[0] = 1; /* ring */
    result = Py_NewRef(Py_True);
done:
    PyBuffer_Release(&view);
    return result;
}

/* -- the module --------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"install", (PyCFunction)(void (*)(void))install, METH_VARARGS | METH_KEYWORDS,
     "install(on_signal=None, fd=-1, interval_us=100, bell=None, on_forewarn=None): what yield "
     "points check and call (interval_us: 1 to 10**9; bell: a 4 KiB, 8-byte aligned mapping)"},
    {"checkpoint", checkpoint, METH_NOARGS, "an explicit yield point"},
    {"switched_in", switched_in, METH_NOARGS,
     "a task is switched in: restart the tune clock; returns the longest gap (ns) since the "
     "last call"},
    {"request", request, METH_NOARGS, "make the next yield point signal (signal-safe)"},
    {"stride", stride, METH_NOARGS, "records between two tunes, as adapted"},
    {"fired_span", fired_span, METH_NOARGS,
     "at the last signal, the time (ns) since the tune before it: well above the interval, "
     "the task ran no yield point meanwhile"},
    {"yielding", yielding, METH_O, "yielding(records): every next() is a yield point"},
    {"take_express", take_express, METH_O, "take_express(mapping): the express slot's message"},
    {"express", express, METH_VARARGS, "express(mapping, message, offset): copy into the slot"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_yieldcore", "Yield points and the express slot, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__yieldcore(void) {
    if (PyType_Ready(&YieldingType) < 0)
        return NULL;
    return PyModule_Create(&module);
}
