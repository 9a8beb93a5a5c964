/* asgi_lifespan.c: the lifespan protocol, ASGI detection and the other slow-path helpers.
 *
 * These run once per worker (or once per timed-out request), so they are written in Python:
 * the source below is compiled into a fresh namespace in each interpreter. The request path
 * (asgi.c, asgi_http.c, asgi_ws.c) never calls into it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "python/asgi.h"
#include "python/asgi_priv.h"
#include "python/pyerr.h"

static const char helpers_src[] =
	"import asyncio, inspect, io, traceback\n"
	"\n"
	"def is_asgi(app):\n"
	"    try:\n"
	"        if inspect.iscoroutinefunction(app):\n"
	"            return True, 'the app is a coroutine function'\n"
	"        call = getattr(type(app), '__call__', None)\n"
	"        if not inspect.isclass(app) and inspect.iscoroutinefunction(call):\n"
	"            return True, 'the app\\'s __call__ is a coroutine function'\n"
	"        req = [p for p in inspect.signature(app).parameters.values()\n"
	"               if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)\n"
	"               and p.default is p.empty]\n"
	"        if len(req) == 3:\n"
	"            return True, 'the app takes 3 arguments (scope, receive, send)'\n"
	"        return False, ('the app is a plain callable of %d required arguments (WSGI: '\n"
	"                       'environ, start_response)' % len(req))\n"
	"    except (TypeError, ValueError) as e:\n"
	"        return False, 'the app\\'s signature cannot be inspected (%s)' % e\n"
	"\n"
	"def stack_text(task):\n"
	"    f = io.StringIO()\n"
	"    task.print_stack(file=f)\n"
	"    return f.getvalue()\n"
	"\n"
	"def watch_selector(loop, mark):\n"
	"    sel = loop._selector\n"
	"    inner = sel.select\n"
	"    def select(timeout=None):\n"
	"        mark(False)\n"
	"        try:\n"
	"            return inner(timeout)\n"
	"        finally:\n"
	"            mark(True)\n"
	"    sel.select = select\n"
	"\n"
	"def unwatch_selector(loop, mark):\n"
	"    vars(loop._selector).pop('select', None)\n"
	"\n"
	"def close_loop(loop):\n"
	"    async def finish():\n"
	"        me = asyncio.current_task()\n"
	"        tasks = [t for t in asyncio.all_tasks() if t is not me]\n"
	"        for t in tasks:\n"
	"            t.cancel()\n"
	"        await asyncio.gather(*tasks, return_exceptions=True)\n"
	"        await loop.shutdown_asyncgens()\n"
	"        await loop.shutdown_default_executor()\n"
	"    try:\n"
	"        loop.run_until_complete(finish())\n"
	"    finally:\n"
	"        asyncio.set_event_loop(None)\n"
	"        loop.close()\n"
	"\n"
	"DONE = ('lifespan.startup.complete', 'lifespan.startup.failed',\n"
	"        'lifespan.shutdown.complete', 'lifespan.shutdown.failed')\n"
	"\n"
	"class Lifespan:\n"
	"    def __init__(self, app, mode, timeout, state, log):\n"
	"        self.app, self.mode, self.timeout = app, mode, timeout\n"
	"        self.state, self.log = state, log\n"
	"        self.queue = asyncio.Queue()\n"
	"        self.reply = None\n"
	"        self.task = None\n"
	"        self.running = True\n"
	"\n"
	"    async def receive(self):\n"
	"        return await self.queue.get()\n"
	"\n"
	"    async def send(self, message):\n"
	"        t = message.get('type')\n"
	"        if t not in DONE:\n"
	"            raise RuntimeError('unexpected ASGI lifespan message %r' % (t,))\n"
	"        if self.reply is not None and not self.reply.done():\n"
	"            self.reply.set_result(message)\n"
	"\n"
	"    async def main(self):\n"
	"        scope = {'type': 'lifespan', 'asgi': {'version': '3.0', 'spec_version': '2.0'},\n"
	"                 'state': self.state}\n"
	"        await self.app(scope, self.receive, self.send)\n"
	"\n"
	"    async def phase(self, name):\n"
	"        loop = asyncio.get_running_loop()\n"
	"        self.reply = loop.create_future()\n"
	"        self.queue.put_nowait({'type': 'lifespan.' + name})\n"
	"        if self.task is None:\n"
	"            self.task = loop.create_task(self.main())\n"
	"        await asyncio.wait({self.reply, self.task}, timeout=self.timeout,\n"
	"                           return_when=asyncio.FIRST_COMPLETED)\n"
	"        if self.reply.done():\n"
	"            msg = self.reply.result()\n"
	"            if msg['type'].endswith('.failed'):\n"
	"                why = msg.get('message') or '(no message)'\n"
	"                return 'lifespan %s failed: %s' % (name, why)\n"
	"            return None\n"
	"        if self.task.done():\n"
	"            return self.ended(name)\n"
	"        self.reply.cancel()\n"
	"        return 'lifespan %s timed out after %gs' % (name, self.timeout)\n"
	"\n"
	"    def ended(self, name):\n"
	"        self.running = False\n"
	"        exc = None if self.task.cancelled() else self.task.exception()\n"
	"        if exc is None:\n"
	"            return None\n"
	"        if self.mode == 'auto' and name == 'startup':\n"
	"            self.log(1, \"ASGI 'lifespan' protocol appears unsupported by the app \"\n"
	"                        '(it raised %s: %s): running without it'\n"
	"                        % (type(exc).__name__, exc))\n"
	"            return None\n"
	"        return 'exception in ASGI lifespan %s:\\n%s' % (\n"
	"            name, ''.join(traceback.format_exception(exc)))\n"
	"\n"
	"    async def startup(self):\n"
	"        return await self.phase('startup')\n"
	"\n"
	"    async def shutdown(self):\n"
	"        if not self.running or self.task is None or self.task.done():\n"
	"            return None\n"
	"        err = await self.phase('shutdown')\n"
	"        if not self.task.done():\n"
	"            self.task.cancel()\n"
	"            await asyncio.wait({self.task}, timeout=1)\n"
	"        return err\n";

PyObject *hb_asgi_helpers_new(void)
{
	PyObject *ns = PyDict_New(), *name = PyUnicode_FromString("_hornbeam_asgi");
	PyObject *code = NULL, *res = NULL;

	if (ns && name && PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) == 0 &&
	    PyDict_SetItemString(ns, "__name__", name) == 0)
		code = Py_CompileString(helpers_src, "<hornbeam asgi helpers>", Py_file_input);
	Py_XDECREF(name);
	if (code)
		res = PyEval_EvalCode(code, ns, ns);
	Py_XDECREF(code);
	if (!res)
		Py_CLEAR(ns);
	Py_XDECREF(res);
	return ns;
}

int hb_asgi_detect(PyObject *app, char *why, size_t len)
{
	PyObject *ns = hb_asgi_helpers_new();
	PyObject *fn = ns ? PyDict_GetItemString(ns, "is_asgi") : NULL;
	PyObject *res = fn ? PyObject_CallOneArg(fn, app) : NULL;
	int rc = -1;

	if (res && PyTuple_Check(res) && PyTuple_GET_SIZE(res) == 2) {
		const char *w = PyUnicode_AsUTF8(PyTuple_GET_ITEM(res, 1));

		rc = PyObject_IsTrue(PyTuple_GET_ITEM(res, 0));
		snprintf(why, len, "%s", w ? w : "");
	}
	Py_XDECREF(res);
	Py_XDECREF(ns);
	if (rc < 0) {
		hb_pyerr_log(HB_LOG_WARNING, "asgi: cannot tell if the app is ASGI: serving WSGI");
		snprintf(why, len, "detection failed (see the warning above)");
		rc = 0;
	}
	return rc;
}

void hb_asgi_log_stack(hb_asgi_worker_t *w, PyObject *task, const char *what)
{
	PyObject *fn = PyDict_GetItemString(w->helpers, "stack_text");
	PyObject *text = fn ? PyObject_CallOneArg(fn, task) : NULL;
	const char *s = text ? PyUnicode_AsUTF8(text) : NULL;

	hb_error("%s", what);
	if (s) {
		size_t len = strlen(s);

		while (len && s[len - 1] == '\n')
			len--;
		hb_log_block(HB_LOG_ERROR, s, len);
	} else {
		PyErr_Clear();
	}
	Py_XDECREF(text);
}

/* Runs coroutine `name` of w->lifespan to completion; returns its result or NULL. */
static PyObject *run_phase(hb_asgi_worker_t *w, const char *name)
{
	PyObject *coro = PyObject_CallMethod(w->lifespan, name, NULL), *res = NULL;

	if (coro)
		res = PyObject_CallMethod(w->loop, "run_until_complete", "O", coro);
	Py_XDECREF(coro);
	return res;
}

/* A str result is a failure message: malloc'd copy ending with a newline. */
static char *message_of(PyObject *res)
{
	const char *s = PyUnicode_Check(res) ? PyUnicode_AsUTF8(res) : NULL;
	char *out = NULL;
	size_t len;

	if (!s) {
		PyErr_Clear();
		return res == Py_None ? NULL : strdup("lifespan failed\n");
	}
	len = strlen(s);
	if ((out = malloc(len + 2))) {
		memcpy(out, s, len);
		out[len] = '\n';
		out[len + (len && s[len - 1] == '\n' ? 0 : 1)] = '\0';
	}
	return out;
}

static const char *mode_name(const hb_config_t *cfg)
{
	switch (cfg->lifespan) {
	case HB_LIFESPAN_ON:
		return "on";
	case HB_LIFESPAN_OFF:
		return "off";
	case HB_LIFESPAN_AUTO:
		break;
	}
	return "auto";
}

char *hb_asgi_lifespan_startup(hb_asgi_worker_t *w)
{
	PyObject *cls, *log, *res;
	char *err;

	if (w->cfg->lifespan == HB_LIFESPAN_OFF)
		return NULL;
	cls = PyDict_GetItemString(w->helpers, "Lifespan");
	log = PyObject_GetAttrString((PyObject *)w, "_log");
	if (cls && log)
		w->lifespan =
			PyObject_CallFunction(cls, "OsdOO", w->app, mode_name(w->cfg),
					      (double)w->cfg->lifespan_timeout_s, w->state, log);
	Py_XDECREF(log);
	res = w->lifespan ? run_phase(w, "startup") : NULL;
	if (!res)
		return hb_pyerr_format();
	err = message_of(res);
	Py_DECREF(res);
	return err;
}

void hb_asgi_lifespan_shutdown(hb_asgi_worker_t *w)
{
	PyObject *res;
	char *err;

	if (!w->lifespan)
		return;
	res = run_phase(w, "shutdown");
	if (!res) {
		hb_pyerr_log(HB_LOG_ERROR, "asgi: lifespan shutdown failed");
		return;
	}
	err = message_of(res);
	Py_DECREF(res);
	if (err) {
		hb_log_block(HB_LOG_ERROR, err, strlen(err) - 1);
		free(err);
	}
}
