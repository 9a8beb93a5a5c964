/* wsgi_input.c: wsgi.input, reading the request body as it arrives. */
#include "python/wsgi_input.h"

#include <errno.h>
#include <string.h>

#define INPUT_CHUNK (64u * 1024u)	/* read-ahead for readline, first allocation for read() */
#define INPUT_FIRST_MAX (1024u * 1024u) /* a declared length is trusted up to this much */

typedef struct {
	PyObject_HEAD hb_stream_t *s; /* NULL once detached */
	char *buf; /* read-ahead of readline: bytes [beg, end) not yet returned */
	size_t beg, end, cap;
	uint64_t consumed; /* bytes taken from the stream */
	int eof;
	int busy; /* a read is in progress with the GIL released */
} input_t;

/* Reads up to n bytes into dst with the GIL released. Returns the count, 0 at the end, or -1
 * with OSError set. dst must not be visible to other Python threads. */
static Py_ssize_t body_read(input_t *in, char *dst, size_t n)
{
	int64_t r;

	if (!in->s || in->eof || n == 0)
		return 0;
	if (in->busy) {
		PyErr_SetString(PyExc_RuntimeError, "wsgi.input read from two threads at once");
		return -1;
	}
	in->busy = 1;
	Py_BEGIN_ALLOW_THREADS r = hb_stream_body_read(in->s, dst, n, 1);
	Py_END_ALLOW_THREADS in->busy = 0;
	if (r == 0)
		in->eof = 1;
	if (r >= 0) {
		in->consumed += (uint64_t)r;
		return (Py_ssize_t)r;
	}
	if (r == -ECONNRESET)
		PyErr_SetString(PyExc_ConnectionResetError, "client disconnected");
	else
		PyErr_Format(PyExc_OSError, "cannot read request body (%s)", strerror((int)-r));
	return -1;
}

/* Appends read-ahead to buf, growing it when full. Returns bytes added, 0 at the end, -1. */
static Py_ssize_t fill(input_t *in)
{
	Py_ssize_t n;

	if (in->beg > 0 && in->beg == in->end)
		in->beg = in->end = 0;
	if (in->end == in->cap) {
		if (in->beg > 0) {
			memmove(in->buf, in->buf + in->beg, in->end - in->beg);
			in->end -= in->beg;
			in->beg = 0;
		} else {
			size_t cap = in->cap ? in->cap * 2 : INPUT_CHUNK;
			char *nb = PyMem_Realloc(in->buf, cap);

			if (!nb) {
				PyErr_NoMemory();
				return -1;
			}
			in->buf = nb;
			in->cap = cap;
		}
	}
	/* The buffer is private to this object, and busy guards against a second thread. */
	n = body_read(in, in->buf + in->end, in->cap - in->end);
	if (n > 0)
		in->end += (size_t)n;
	return n;
}

/* How much the first allocation of read(size) should hold. */
static size_t first_alloc(input_t *in, size_t size)
{
	size_t want = INPUT_CHUNK;

	if (in->s && in->s->req->content_length >= 0) {
		uint64_t left = (uint64_t)in->s->req->content_length - in->consumed;

		/* Allocate what was announced, but not a client's unbacked promise of a GiB. */
		want = left < INPUT_FIRST_MAX ? (size_t)left : INPUT_FIRST_MAX;
	}
	want += in->end - in->beg;
	return want < size ? want : size;
}

/* read(size): exactly size bytes unless the body ends first; size < 0: everything. */
static PyObject *input_read_n(input_t *in, size_t size)
{
	size_t cap = first_alloc(in, size), got = in->end - in->beg;
	PyObject *out;

	if (got > size)
		got = size;
	if (cap < got)
		cap = got;
	out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap);
	if (!out)
		return NULL;
	if (got) {
		memcpy(PyBytes_AS_STRING(out), in->buf + in->beg, got);
		in->beg += got;
	}
	while (got < size && !in->eof && in->s) {
		Py_ssize_t n;

		if (got == cap) {
			/* Grow geometrically, by at least 4 KiB, never past what was asked. */
			cap = cap < 4096 ? cap + 4096 : cap * 2;
			if (cap > size)
				cap = size;
			if (_PyBytes_Resize(&out, (Py_ssize_t)cap) < 0)
				return NULL;
		}
		n = body_read(in, PyBytes_AS_STRING(out) + got, cap - got);
		if (n < 0) {
			Py_DECREF(out);
			return NULL;
		}
		got += (size_t)n;
	}
	if (got != cap && _PyBytes_Resize(&out, (Py_ssize_t)got) < 0)
		return NULL;
	return out;
}

static int size_arg(const char *fn, PyObject *const *args, Py_ssize_t nargs, Py_ssize_t *out)
{
	*out = -1;
	if (nargs > 1) {
		PyErr_Format(PyExc_TypeError, "%s() takes at most 1 argument (%zd given)", fn,
			     nargs);
		return -1;
	}
	if (nargs == 1 && args[0] != Py_None) {
		*out = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
		if (*out == -1 && PyErr_Occurred())
			return -1;
	}
	return 0;
}

static PyObject *input_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	Py_ssize_t size;

	if (size_arg("read", args, nargs, &size) < 0)
		return NULL;
	return input_read_n((input_t *)self, size < 0 ? (size_t)PY_SSIZE_T_MAX : (size_t)size);
}

/* One line, at most limit bytes (the whole line when limit is SIZE_MAX). */
static PyObject *readline_n(input_t *in, size_t limit)
{
	size_t scanned = 0;

	for (;;) {
		size_t avail = in->end - in->beg, n;
		const char *start = in->buf + in->beg, *nl;

		n = avail < limit ? avail : limit;
		nl = n > scanned ? memchr(start + scanned, '\n', n - scanned) : NULL;
		if (nl || avail >= limit || in->eof || !in->s) {
			size_t take = nl ? (size_t)(nl - start) + 1 : n;
			PyObject *line = PyBytes_FromStringAndSize(start, (Py_ssize_t)take);

			if (line)
				in->beg += take;
			return line;
		}
		scanned = n;
		if (fill(in) < 0)
			return NULL;
		/* fill may have moved the read-ahead to the front: scanned is relative, still valid
		 */
	}
}

static PyObject *input_readline(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	Py_ssize_t size;

	if (size_arg("readline", args, nargs, &size) < 0)
		return NULL;
	if (size == 0)
		return PyBytes_FromStringAndSize(NULL, 0);
	return readline_n((input_t *)self, size < 0 ? SIZE_MAX : (size_t)size);
}

static PyObject *input_readlines(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	Py_ssize_t hint;
	size_t total = 0;
	PyObject *lines;

	if (size_arg("readlines", args, nargs, &hint) < 0)
		return NULL;
	lines = PyList_New(0);
	while (lines) {
		PyObject *line = readline_n((input_t *)self, SIZE_MAX);
		Py_ssize_t len;

		if (!line)
			goto fail;
		len = PyBytes_GET_SIZE(line);
		if (len == 0 || PyList_Append(lines, line) < 0) {
			Py_DECREF(line);
			if (len == 0)
				break;
			goto fail;
		}
		Py_DECREF(line);
		total += (size_t)len;
		if (hint > 0 && total >= (size_t)hint)
			break;
	}
	return lines;
fail:
	Py_DECREF(lines);
	return NULL;
}

static PyObject *input_next(PyObject *self)
{
	PyObject *line = readline_n((input_t *)self, SIZE_MAX);

	if (line && PyBytes_GET_SIZE(line) == 0) {
		Py_DECREF(line);
		return NULL; /* StopIteration */
	}
	return line;
}

static PyMethodDef input_methods[] = {
	{"read", (PyCFunction)(void (*)(void))input_read, METH_FASTCALL,
	 "read(size=-1): up to size bytes of the body; b'' at the end."},
	{"readline", (PyCFunction)(void (*)(void))input_readline, METH_FASTCALL,
	 "readline(size=-1): one line of the body."},
	{"readlines", (PyCFunction)(void (*)(void))input_readlines, METH_FASTCALL,
	 "readlines(hint=-1): the remaining lines."},
	{NULL, NULL, 0, NULL},
};

static int input_traverse(PyObject *self, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE(self));
	return 0;
}

static void input_dealloc(PyObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);

	PyObject_GC_UnTrack(self);
	PyMem_Free(((input_t *)self)->buf);
	tp->tp_free(self);
	Py_DECREF(tp);
}

static PyType_Slot input_slots[] = {
	{Py_tp_methods, input_methods}, {Py_tp_iter, PyObject_SelfIter},
	{Py_tp_iternext, input_next},	{Py_tp_traverse, input_traverse},
	{Py_tp_dealloc, input_dealloc}, {0, NULL},
};

static PyType_Spec input_spec = {
	.name = "_hornbeam.InputStream",
	.basicsize = sizeof(input_t),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
		 Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = input_slots,
};

PyTypeObject *hb_wsgi_input_type_new(PyObject *module)
{
	return (PyTypeObject *)PyType_FromModuleAndSpec(module, &input_spec, NULL);
}

PyObject *hb_wsgi_input_new(hb_modstate_t *st, hb_stream_t *s)
{
	input_t *in = (input_t *)PyType_GenericAlloc(st->input_type, 0);

	if (!in)
		return NULL;
	in->s = s;
	/* Nothing to wait for when the request has no body. */
	in->eof = !(s->req->flags & (HB_REQ_HAS_BODY | HB_REQ_CHUNKED)) &&
		  s->req->content_length <= 0;
	return (PyObject *)in;
}

void hb_wsgi_input_detach(PyObject *input)
{
	input_t *in = (input_t *)input;

	in->s = NULL;
	in->eof = 1;
	PyMem_Free(in->buf);
	in->buf = NULL;
	in->beg = in->end = in->cap = 0;
}
