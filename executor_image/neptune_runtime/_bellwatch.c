/* The bell watcher: a thread that rings the executor's own doorbell when the driver's bytes
 * arrive, for an executor whose driver cannot ring it (another pod, another host).
 *
 * Why: without a ringing driver, a running task finds a preemption only at its next socket
 * poll (every NEPTUNE_POLL_US of task time, 100 us by default), and the poll is a system call,
 * too dear to make at every record. This thread blocks in epoll_wait on the socket, edge-
 * triggered (one wake-up per arrival, not per unread byte), and on each wake-up sets byte 0 of
 * the doorbell's page (doorbell.py), which the yield points read at every record with one load.
 * The executor clears the byte before it reads the socket, as with a driver's ring, so a later
 * arrival rings again and none is missed; a ring with nothing left to read costs one empty read.
 *
 * The thread touches no Python object and never holds the GIL: the page is held (a buffer
 * view) from start() to stop(). One watcher per process: the executor has one connection.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define SIZE 4096 /* doorbell.SIZE */

static struct {
    int running;
    pthread_t thread;
    int epfd, stopfd;
    Py_buffer page;
    uint8_t *byte;
    unsigned long long rings; /* wake-ups that rang (written by the thread only) */
} W = {0, 0, -1, -1, {0}, NULL, 0};

static void *watch(void *unused) {
    /* Free of the executor's CPU pin (local mode pins it to one core): woken on the core of the
     * task it rings for, it would have to preempt that task first. A cgroup's cpuset still
     * bounds this; failing it, the pin stays. */
    cpu_set_t any;
    CPU_ZERO(&any);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        CPU_SET(cpu, &any);
    sched_setaffinity(0, sizeof any, &any);
    struct epoll_event events[2];
    for (;;) {
        int n = epoll_wait(W.epfd, events, 2, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return NULL; /* the yield points' socket polls still serve */
        }
        for (int i = 0; i < n; i++)
            if (events[i].data.fd == W.stopfd)
                return NULL;
        __atomic_store_n(W.byte, 1, __ATOMIC_RELEASE);
        __atomic_add_fetch(&W.rings, 1, __ATOMIC_RELAXED);
    }
}

static void close_fds(void) {
    if (W.epfd >= 0)
        close(W.epfd);
    if (W.stopfd >= 0)
        close(W.stopfd);
    W.epfd = W.stopfd = -1;
}

static int add(int fd, uint32_t flags) {
    struct epoll_event event = {.events = flags, .data.fd = fd};
    return epoll_ctl(W.epfd, EPOLL_CTL_ADD, fd, &event);
}

static PyObject *stop(PyObject *module, PyObject *unused) {
    if (!W.running)
        Py_RETURN_NONE;
    uint64_t one = 1;
    ssize_t written = write(W.stopfd, &one, sizeof one);
    (void)written; /* an eventfd write of 1 cannot fail short of overflow */
    Py_BEGIN_ALLOW_THREADS
    pthread_join(W.thread, NULL);
    Py_END_ALLOW_THREADS
    W.running = 0;
    close_fds();
    W.byte = NULL;
    PyBuffer_Release(&W.page);
    Py_RETURN_NONE;
}

static PyObject *start(PyObject *module, PyObject *args) {
    int fd;
    PyObject *mapping;
    if (!PyArg_ParseTuple(args, "iO:start", &fd, &mapping))
        return NULL;
    if (W.running && stop(module, NULL) == NULL)
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(mapping, &view, PyBUF_WRITABLE) < 0)
        return NULL;
    if (view.len < SIZE) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "the doorbell mapping is too small");
        return NULL;
    }
    W.epfd = epoll_create1(EPOLL_CLOEXEC);
    W.stopfd = eventfd(0, EFD_CLOEXEC);
    if (W.epfd < 0 || W.stopfd < 0 || add(W.stopfd, EPOLLIN) < 0 ||
        add(fd, EPOLLIN | EPOLLRDHUP | EPOLLET) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        close_fds();
        PyBuffer_Release(&view);
        return NULL;
    }
    W.page = view;
    W.byte = (uint8_t *)view.buf;
    /* the process's signals stay the main thread's: the new thread blocks them all */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int failed = pthread_create(&W.thread, NULL, watch, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (failed) {
        errno = failed;
        PyErr_SetFromErrno(PyExc_OSError);
        close_fds();
        W.byte = NULL;
        PyBuffer_Release(&W.page);
        return NULL;
    }
    W.running = 1;
    Py_RETURN_NONE;
}

static PyObject *running(PyObject *module, PyObject *unused) {
    return PyBool_FromLong(W.running);
}

static PyObject *rings(PyObject *module, PyObject *unused) {
    return PyLong_FromUnsignedLongLong(__atomic_load_n(&W.rings, __ATOMIC_RELAXED));
}

static PyMethodDef methods[] = {
    {"start", start, METH_VARARGS,
     "start(fd, mapping): ring byte 0 of the doorbell mapping whenever fd has new bytes"},
    {"stop", stop, METH_NOARGS, "stop the watcher, and let go of its mapping (idempotent)"},
    {"running", running, METH_NOARGS, "whether a watcher runs"},
    {"rings", rings, METH_NOARGS, "how many times the watcher rang since the process began"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "neptune_runtime._bellwatch",
    "A thread that rings the executor's own doorbell when the driver's bytes arrive.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__bellwatch(void) {
    return PyModule_Create(&module);
}
