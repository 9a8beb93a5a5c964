/* pyerr.h: turning the current Python exception into text for the logs and stderr.
 *
 * Called with the GIL held, in any interpreter. These consume (clear) the exception.
 */
#ifndef HB_PYTHON_PYERR_H
#define HB_PYTHON_PYERR_H

#include "core/log.h"

/* The current exception's traceback as a malloc'd UTF-8 string (caller frees), or a short
 * message when it cannot be formatted. Clears the exception. Never NULL except on ENOMEM. */
char *hb_pyerr_format(void);

/* Logs `what`, then the traceback of the current exception, at level. Clears the exception. */
void hb_pyerr_log(hb_log_level_t level, const char *what);

#endif
