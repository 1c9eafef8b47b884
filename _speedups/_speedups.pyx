# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False, auto_pickle=False
"""Compiled hot paths of gostore; ``gostore/_speedups_py.py`` is the pure twin with the same
names, signatures, results and exceptions."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_SetItem
from cpython.list cimport PyList_Append
from cpython.unicode cimport PyUnicode_DecodeUTF8
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_SET_ITEM
from libc.string cimport memchr, memcmp

cdef extern from *:
    """
    /* A dict sized for n entries up front saves its resizes; the presizing call is private
       CPython API, so it is used only where it is known to exist (3.10-3.12). */
    #if PY_VERSION_HEX < 0x030D0000
    #define gostore_dict_for(n) _PyDict_NewPresized(n)
    #else
    #define gostore_dict_for(n) PyDict_New()
    #endif
    """
    dict gostore_dict_for(Py_ssize_t n)

cdef extern from "Python.h":
    object PyType_GenericAlloc(type subtype, Py_ssize_t nitems)
    void PyObject_GC_UnTrack(object op)

cdef inline Py_ssize_t _part_end(const char* data, Py_ssize_t start, Py_ssize_t size):
    cdef const char* hit = <const char*>memchr(data + start, 0xFF, size - start)
    if hit == NULL:
        return size
    return hit - data


cdef class _Parts:
    """Walks two 0xFF-joined blobs part by part, reusing the str of a value equal to the
    previous one (groups often repeat values: flags, states), which saves an allocation."""

    cdef const char* kdata
    cdef const char* vdata
    cdef Py_ssize_t ksize, vsize, kpos, vpos, count, seen
    cdef const char* last_value
    cdef Py_ssize_t last_len
    cdef object last_str
    cdef bytes keys, values  # keep the buffers alive

    def __cinit__(self, Py_ssize_t count, bytes keys, bytes values):
        self.keys = keys
        self.values = values
        self.kdata = PyBytes_AS_STRING(keys)
        self.vdata = PyBytes_AS_STRING(values)
        self.ksize = PyBytes_GET_SIZE(keys)
        self.vsize = PyBytes_GET_SIZE(values)
        self.count = count
        self.last_len = -1

    cdef object value  # the value of the pair last returned by next_key()

    cdef inline object next_key(self):
        """The next key (its value in self.value), or None when the parts do not number count."""
        cdef Py_ssize_t kend = _part_end(self.kdata, self.kpos, self.ksize)
        cdef Py_ssize_t vend = _part_end(self.vdata, self.vpos, self.vsize)
        cdef bint last = self.seen == self.count - 1
        cdef Py_ssize_t vlen
        cdef const char* vstart
        cdef object key
        # Exactly count parts: every part but the last ends at a separator.
        if (kend == self.ksize) != last or (vend == self.vsize) != last:
            return None
        key = PyUnicode_DecodeUTF8(self.kdata + self.kpos, kend - self.kpos, NULL)
        vlen = vend - self.vpos
        vstart = self.vdata + self.vpos
        if vlen == self.last_len and memcmp(vstart, self.last_value, vlen) == 0:
            self.value = self.last_str
        else:
            self.value = PyUnicode_DecodeUTF8(vstart, vlen, NULL)
            self.last_str = self.value
            self.last_value = vstart
            self.last_len = vlen
        self.kpos = kend + 1
        self.vpos = vend + 1
        self.seen += 1
        return key


def decode_group(Py_ssize_t count, keys, values):
    """Decode a group fetched as two 0xFF-joined UTF-8 blobs into ``{key: value}``."""
    if count == 0:
        return {}
    if keys is None or values is None:
        return None
    cdef dict result = gostore_dict_for(count)
    cdef _Parts parts = _Parts(count, keys, values)
    cdef object key
    cdef Py_ssize_t i
    for i in range(count):
        key = parts.next_key()
        if key is None:
            return None
        PyDict_SetItem(result, key, parts.value)
    return result


def decode_pairs(Py_ssize_t count, keys, values, pair):
    """Like :func:`decode_group` but keeps row order, as ``[pair(key, value), ...]``."""
    cdef list result = []
    if count == 0:
        return result
    if keys is None or values is None:
        return None
    cdef _Parts parts = _Parts(count, keys, values)
    cdef object key, item
    cdef Py_ssize_t i
    # A 2-field tuple subclass (KeyValue) is filled in place, as tuple.__new__ would, instead
    # of calling its Python-level __new__ for every row.
    cdef bint direct = isinstance(pair, type) and issubclass(pair, tuple)
    for i in range(count):
        key = parts.next_key()
        if key is None:
            return None
        if direct:
            item = PyType_GenericAlloc(<type>pair, 2)
            Py_INCREF(key)
            PyTuple_SET_ITEM(item, 0, key)
            Py_INCREF(parts.value)
            PyTuple_SET_ITEM(item, 1, parts.value)
            # A tuple of two str can hold no reference cycle; the collector would untrack it at
            # its next pass anyway. Untracked now, 10,000 rows add no collector work.
            PyObject_GC_UnTrack(item)
        else:
            item = pair(key, parts.value)
        PyList_Append(result, item)
    return result


cdef tuple _NONE = ()


cdef class WatcherIndex:
    """Finds the watchers matching an event with a few dict lookups, however many exist.

    Watchers are filed by group, then key (either may be "*"); namespace watchers by
    namespace, then key. Buckets are tuples replaced on change.
    """

    cdef dict _by_group
    cdef dict _by_namespace

    def __init__(self):
        self._by_group = {}
        self._by_namespace = {}

    cdef inline tuple _where(self, watcher):
        if watcher.namespace is not None:
            return (self._by_namespace, watcher.namespace, watcher.key)
        return (self._by_group, watcher.group, watcher.key)

    def add(self, watcher):
        table, outer, inner = self._where(watcher)
        keys = (<dict>table).setdefault(outer, {})
        (<dict>keys)[inner] = (<dict>keys).get(inner, _NONE) + (watcher,)

    def remove(self, watcher):
        table, outer, inner = self._where(watcher)
        keys = (<dict>table).get(outer)
        if keys is None:
            return
        bucket = tuple([w for w in (<dict>keys).get(inner, _NONE) if w is not watcher])
        if bucket:
            (<dict>keys)[inner] = bucket
        else:
            (<dict>keys).pop(inner, None)
            if not keys:
                del (<dict>table)[outer]

    cdef inline list _collect(self, list found, object keys, str key, bint whole_group):
        cdef object bucket
        if keys is None:
            return found
        if not whole_group and key != "*":
            bucket = (<dict>keys).get(key)
            if bucket is not None:
                if found is None:
                    found = []
                found.extend(<tuple>bucket)
        bucket = (<dict>keys).get("*")
        if bucket is not None:
            if found is None:
                found = []
            found.extend(<tuple>bucket)
        return found

    def match(self, str group, str key, bint whole_group):
        """The watchers an event on ``(group, key)`` reaches, each once (``()`` when none).

        ``whole_group``: a DELETE_GROUP event, which reaches only watchers whose key is "*".
        """
        cdef list found = None
        cdef Py_ssize_t colon
        if self._by_group:
            found = self._collect(found, self._by_group.get(group), key, whole_group)
            if group != "*":
                found = self._collect(found, self._by_group.get("*"), key, whole_group)
        if self._by_namespace:
            colon = group.find(":")
            if colon >= 0:
                found = self._collect(
                    found, self._by_namespace.get(group[:colon]), key, whole_group
                )
        return _NONE if found is None else found


cdef inline object _first_row(object cursor, int rows):
    """What a statement's cursor gives for ``rows`` (see :class:`BoundStatement`)."""
    cdef object row = None
    if rows:
        for row in cursor:
            break
        if rows == 2 and row is not None:
            for _ in cursor:
                pass
    return row


cdef class BoundStatement:
    """One SQL statement as a single C-level call: ``stmt(*args)`` runs ``execute(sql, args)``
    (under ``lock`` when one is given) and returns the first row or ``None``.

    ``rows`` picks what is read: 0 nothing (a write), 1 the first row, 2 the first row and then
    the statement run to its end (on a file, an unfinished SELECT pins a WAL snapshot).
    An exception that is an instance of ``errors`` is replaced by ``on_error(exc)``, raised from
    it. ``execute`` may be swapped at any time (a poisoned transaction, a closed store).
    """

    cdef object _acquire, _release, _sql, _errors, _on_error
    cdef int _rows
    cdef public object execute

    def __init__(self, execute, sql, int rows, errors, on_error, lock=None):
        self.execute = execute
        self._sql = sql
        self._rows = rows
        self._errors = errors
        self._on_error = on_error
        if lock is None:
            self._acquire = None
            self._release = None
        else:
            self._acquire = lock.acquire
            self._release = lock.release

    def __call__(self, *args):
        cdef object row = None
        cdef object cursor
        if self._acquire is not None:
            self._acquire()
        try:
            row = _first_row(self.execute(self._sql, args), self._rows)
        except BaseException as exc:
            if isinstance(exc, self._errors):
                raise self._on_error(exc) from exc
            raise
        finally:
            if self._release is not None:
                self._release()
        return row


cdef extern from "pythread.h":
    unsigned long PyThread_get_thread_ident()


cdef class PooledRead:
    """A read statement as a single C-level call on a pool of reader connections:
    ``stmt(*args)`` runs ``sql`` on an idle reader cursor (taken from ``idle``, or from
    ``take()`` when none is idle) and returns the first row or ``None``, reading the statement
    to its end so that no snapshot stays open.

    A thread whose ident is ``owner`` (the thread with an open write transaction) calls
    ``writer(*args)`` instead, so it sees its own writes; so does every thread when ``take()``
    returns ``None`` (no reader could be opened). After use the cursor goes back to ``idle``;
    when ``waiting[0]`` is non-zero, ``notify()`` is called as well.
    """

    cdef object _writer, _sql, _errors, _on_error, _take, _notify
    cdef list _idle, _waiting
    cdef public unsigned long owner

    def __init__(self, writer, sql, list idle, take, notify, list waiting, errors, on_error):
        self._writer = writer
        self._sql = sql
        self._idle = idle
        self._take = take
        self._notify = notify
        self._waiting = waiting
        self._errors = errors
        self._on_error = on_error
        self.owner = 0

    def __call__(self, *args):
        cdef object row = None
        cdef object cursor
        if self.owner != 0 and self.owner == PyThread_get_thread_ident():
            return self._writer(*args)
        # NOTE: the test and the pop run under the GIL with no Python code between them.
        if self._idle:
            cursor = self._idle.pop()
        else:
            cursor = self._take()
            if cursor is None:
                return self._writer(*args)
        try:
            for row in cursor.execute(self._sql, args):
                break
            if row is not None:
                for _ in cursor:
                    pass
        except BaseException as exc:
            if isinstance(exc, self._errors):
                raise self._on_error(exc) from exc
            raise
        finally:
            PyList_Append(self._idle, cursor)
            if self._waiting[0]:
                self._notify()
        return row



cdef object _sleep = __import__("time").sleep
# A gated statement that found the connection busy in another thread for all of the driver's
# own waiting (APSW waits about a third of a second with the GIL released, then raises) tries
# again this many times before the failure is raised.
cdef int _BUSY_RETRIES = 100


cdef class Gate:
    """Lets single statements run on a shared connection without the store's lock, beside
    each other, until someone shuts it.

    A statement that passes (:meth:`enter`, or a :class:`GatedStatement`) counts itself in
    flight until it ends. :meth:`shut` closes the gate to every statement, or to writes only,
    and returns once the statements in flight have ended, so the caller then has the
    connection to itself; :meth:`reopen` undoes one :meth:`shut`. Shuts nest (a count).

    NOTE: the count and the test run under the GIL with no Python code between them, so a
    statement either sees the gate shut or is counted before :meth:`shut` waits for it.
    """

    cdef public int shut_all, shut_writes
    #: who may want a write's event (the store's event hub), or None: a write passes only
    #: while ``listener.active`` is false or no watcher or callback wants its key
    cdef public object listener
    cdef int _inflight

    def __init__(self):
        self.shut_all = 0
        self.shut_writes = 0
        self.listener = None
        self._inflight = 0

    @property
    def inflight(self):
        """Statements running past the gate now."""
        return self._inflight

    def enter(self, bint write, group=None, key=None):
        """Count a statement in flight and return True, or False when the gate is shut to it
        or, for a write of ``group``/``key``, someone wants its event (then nothing is
        counted: run it under the lock instead)."""
        self._inflight += 1
        if self.shut_all or (write and (self.shut_writes or self._wanted(group, key))):
            self._inflight -= 1
            return False
        return True

    cdef bint _wanted(self, group, key) except -1:
        listener = self.listener
        if listener is None or not listener.active:
            return False
        return bool(listener.callbacks) or bool(listener.match(group, key, False))

    def leave(self):
        """The statement counted by :meth:`enter` has ended."""
        self._inflight -= 1

    def shut(self, bint writes_only=False):
        """Shut the gate (to writes only, or to all) and wait for the statements in flight."""
        self._shut(writes_only)

    def reopen(self, bint writes_only=False):
        """Undo one :meth:`shut`."""
        if writes_only:
            self.shut_writes -= 1
        else:
            self.shut_all -= 1

    cdef void _shut(self, bint writes_only) except *:
        if writes_only:
            self.shut_writes += 1
        else:
            self.shut_all += 1
        cdef int spins = 0
        while self._inflight > 0:  # statements last microseconds: yield the GIL to them
            spins += 1
            _sleep(0 if spins < 100 else 0.0001)


cdef extern from "pythread.h":
    ctypedef void *PyThread_type_lock
    ctypedef enum PyLockStatus:
        PY_LOCK_FAILURE, PY_LOCK_ACQUIRED, PY_LOCK_INTR
    PyThread_type_lock PyThread_allocate_lock()
    void PyThread_free_lock(PyThread_type_lock)
    int PyThread_acquire_lock(PyThread_type_lock, int) nogil
    PyLockStatus PyThread_acquire_lock_timed(PyThread_type_lock, long long, int) nogil
    void PyThread_release_lock(PyThread_type_lock) nogil

cdef extern from "Python.h":
    int PyErr_CheckSignals() except -1

cdef object _monotonic = __import__("time").monotonic


cdef class GateLock:
    """A reentrant lock that shuts ``gate`` while it is held: whoever holds it has the
    connection to itself, and gated statements run only while nobody holds it. Released by
    the thread that holds it only (as an ``RLock``).

    NOTE: its own reentrant lock rather than a wrapped ``threading.RLock``: the lock is taken
    around every locked call, and a wrapper costs a second Python-level call each way.
    """

    cdef PyThread_type_lock _lock
    cdef unsigned long _owner
    cdef int _depth  # changed only by the holder
    cdef Gate _gate

    def __cinit__(self, Gate gate):
        self._lock = PyThread_allocate_lock()
        if self._lock == NULL:
            raise MemoryError("cannot allocate a lock")
        self._owner = 0
        self._depth = 0
        self._gate = gate

    def __dealloc__(self):
        if self._lock != NULL:
            if self._depth:  # held (e.g. by a thread of the parent of a forked process)
                PyThread_release_lock(self._lock)
            PyThread_free_lock(self._lock)

    def acquire(self, blocking=True, timeout=-1):
        cdef unsigned long me = PyThread_get_thread_ident()
        if self._depth and self._owner == me:
            self._depth += 1
            return True
        if not PyThread_acquire_lock(self._lock, 0):
            if not blocking or not self._wait(timeout):
                return False
        self._owner = me
        self._depth = 1
        try:
            self._gate._shut(False)
        except BaseException:
            self._depth = 0
            self._owner = 0
            PyThread_release_lock(self._lock)
            raise
        return True

    cdef bint _wait(self, timeout) except -1:
        """Block until the lock is taken (True) or ``timeout`` seconds pass (False), the GIL
        released, waking every 50 ms to let signal handlers run."""
        cdef double deadline = -1.0
        cdef double left
        cdef long long step
        cdef PyLockStatus got
        if timeout >= 0:
            deadline = _monotonic() + timeout
        while True:
            step = 50000
            if deadline >= 0:
                left = deadline - _monotonic()
                if left <= 0:
                    return False
                if left * 1e6 < step:
                    step = <long long>(left * 1e6)
            with nogil:
                got = PyThread_acquire_lock_timed(self._lock, step, 0)
            if got == PY_LOCK_ACQUIRED:
                return True
            PyErr_CheckSignals()

    def release(self):
        if not self._depth or self._owner != PyThread_get_thread_ident():
            raise RuntimeError("cannot release un-acquired lock")
        self._depth -= 1
        if not self._depth:
            self._gate.shut_all -= 1
            self._owner = 0
            PyThread_release_lock(self._lock)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()


cdef class GatedStatement:
    """One SQL statement as a single C-level call that runs without the store's lock while
    ``gate`` is open: ``stmt(*args)`` runs ``sql`` on a cursor of its own (taken from
    ``cursors``, or made by ``new_cursor()``) and returns what :class:`BoundStatement` would
    (``True`` for a write). When the gate is shut to it (to everything, or to writes when
    ``write``), or a write's ``(group, key, ...)`` is wanted by the gate's listener, it returns
    ``blocked(*args)`` instead. ``busy`` is the driver's exception for a
    connection busy in another thread, raised before the statement ran: it is run again.
    """

    cdef Gate _gate
    cdef bint _write
    cdef list _cursors
    cdef object _new_cursor, _sql, _errors, _on_error, _blocked, _busy
    cdef int _rows

    def __init__(
        self, Gate gate, bint write, list cursors, new_cursor, sql, int rows, errors, on_error,
        blocked, busy,
    ):
        self._gate = gate
        self._write = write
        self._cursors = cursors
        self._new_cursor = new_cursor
        self._sql = sql
        self._rows = rows
        self._errors = errors
        self._on_error = on_error
        self._blocked = blocked
        self._busy = busy

    def __call__(self, *args):
        cdef Gate gate = self._gate
        cdef object row = None
        cdef object cursor, rows
        cdef int tries = 0
        gate._inflight += 1
        if gate.shut_all or (
            self._write and (gate.shut_writes or gate._wanted(args[0], args[1]))
        ):
            gate._inflight -= 1
            return self._blocked(*args)
        try:
            cursor = self._cursors.pop() if self._cursors else self._new_cursor()
        except BaseException:
            gate._inflight -= 1
            raise
        try:
            while True:
                try:
                    rows = cursor.execute(self._sql, args)
                    break
                except BaseException as exc:
                    tries += 1
                    if tries > _BUSY_RETRIES or not isinstance(exc, self._busy):
                        raise
            row = _first_row(rows, self._rows) if self._rows else True
        except BaseException as exc:
            if isinstance(exc, self._errors):
                raise self._on_error(exc) from exc
            raise
        finally:
            PyList_Append(self._cursors, cursor)
            gate._inflight -= 1
        return row
