/* main.c: the hornbeam-uring process: the master (src/supervisor/master.h), which loads the
 * configuration, binds the listeners and runs the worker processes (src/supervisor/worker.h),
 * each of which is the server of the other layers: io threads, Python workers, cluster. */
#include "supervisor/master.h"

#ifdef __SANITIZE_ADDRESS__
/* CPython is still up on a worker's early exits, its pymalloc arenas hiding live references
 * from LSan: a worker runs the leak check itself once Python is finalized, not at every exit. */
const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
	return "leak_check_at_exit=0";
}
#endif

extern char **environ;

int main(int argc, char **argv)
{
	return hb_master_run(argc, argv, environ);
}
