/* master.h: the master process: the listeners, the shared state region, the worker processes
 * and the signals (docs/production.md).
 *
 * The master runs no Python and no other thread. It loads the configuration (the TOML file
 * through a forked helper, tomlproc.h), binds the listeners, creates the shared map, writes the
 * pid file, drops privileges, then forks `processes` worker processes (worker.h) and supervises
 * them from one poll loop over a signalfd and the workers' readiness pipes: a worker that dies
 * is logged and replaced (crash loops back off), and the signals drive the lifecycle:
 *   TERM, INT   graceful stop: listeners shut down at once (connects refused), workers drain
 *   QUIT, 2nd   immediate stop
 *   HUP         reload: config re-read, a new generation started, the old one retired once it
 *               is ready; on an error the old generation keeps serving
 *   USR1        workers reopen their log files
 *   TTIN, TTOU  one more / one fewer worker process
 *   USR2        binary upgrade: exec the binary again with the listeners inherited
 *               (upgrade.c); the old master retires once the new one is ready (its WINCH)
 *   WINCH       ignored (logged), but from the new master of an upgrade
 */
#ifndef HB_SUPERVISOR_MASTER_H
#define HB_SUPERVISOR_MASTER_H

/* Runs the server; returns the process exit status (0 after a clean stop, 2 for a
 * configuration error, else the first failing worker's status). */
int hb_master_run(int argc, char **argv, char **envp);

#endif
