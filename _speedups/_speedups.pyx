# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False
"""Compiled hot paths of gostore; ``gostore/_speedups_py.py`` is the pure twin with the same
names, signatures, results and exceptions."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_SetItem
from cpython.list cimport PyList_Append
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport memchr

cdef inline Py_ssize_t _part_end(const char* data, Py_ssize_t start, Py_ssize_t size):
    cdef const char* hit = <const char*>memchr(data + start, 0xFF, size - start)
    if hit == NULL:
        return size
    return hit - data


cdef inline bint _counts_match(Py_ssize_t count, bytes blob):
    # count parts means count - 1 separators.
    cdef const char* data = PyBytes_AS_STRING(blob)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(blob)
    cdef Py_ssize_t seen = 0
    cdef Py_ssize_t pos = 0
    cdef const char* hit
    while pos < size:
        hit = <const char*>memchr(data + pos, 0xFF, size - pos)
        if hit == NULL:
            break
        seen += 1
        if seen >= count:
            return False
        pos = (hit - data) + 1
    return seen == count - 1


def decode_group(Py_ssize_t count, keys, values):
    """Decode a group fetched as two 0xFF-joined UTF-8 blobs into ``{key: value}``."""
    cdef dict result = {}
    if count == 0:
        return result
    if keys is None or values is None:
        return None
    if not _counts_match(count, <bytes>keys) or not _counts_match(count, <bytes>values):
        return None
    cdef const char* kdata = PyBytes_AS_STRING(keys)
    cdef const char* vdata = PyBytes_AS_STRING(values)
    cdef Py_ssize_t ksize = PyBytes_GET_SIZE(keys)
    cdef Py_ssize_t vsize = PyBytes_GET_SIZE(values)
    cdef Py_ssize_t kpos = 0, vpos = 0, kend, vend, i
    for i in range(count):
        kend = _part_end(kdata, kpos, ksize)
        vend = _part_end(vdata, vpos, vsize)
        PyDict_SetItem(
            result,
            PyUnicode_DecodeUTF8(kdata + kpos, kend - kpos, NULL),
            PyUnicode_DecodeUTF8(vdata + vpos, vend - vpos, NULL),
        )
        kpos = kend + 1
        vpos = vend + 1
    return result


def decode_pairs(Py_ssize_t count, keys, values, pair):
    """Like :func:`decode_group` but keeps row order, as ``[pair(key, value), ...]``."""
    cdef list result = []
    if count == 0:
        return result
    if keys is None or values is None:
        return None
    if not _counts_match(count, <bytes>keys) or not _counts_match(count, <bytes>values):
        return None
    cdef const char* kdata = PyBytes_AS_STRING(keys)
    cdef const char* vdata = PyBytes_AS_STRING(values)
    cdef Py_ssize_t ksize = PyBytes_GET_SIZE(keys)
    cdef Py_ssize_t vsize = PyBytes_GET_SIZE(values)
    cdef Py_ssize_t kpos = 0, vpos = 0, kend, vend, i
    for i in range(count):
        kend = _part_end(kdata, kpos, ksize)
        vend = _part_end(vdata, vpos, vsize)
        PyList_Append(
            result,
            pair(
                PyUnicode_DecodeUTF8(kdata + kpos, kend - kpos, NULL),
                PyUnicode_DecodeUTF8(vdata + vpos, vend - vpos, NULL),
            ),
        )
        kpos = kend + 1
        vpos = vend + 1
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
