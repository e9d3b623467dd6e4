/* provider_file.c: the file driver, for development: appends the webhook's
 * JSON object as one line to the file named in the config ("path"), with
 * O_APPEND and a single write(2) per line under an exclusive flock(2), so
 * that concurrent senders never interleave lines and a line cut short is
 * removed again; "fsync": true syncs each line to disk. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "provider.h"

struct file_state {
	const char *path;
	int fsync;
};

static int
file_init(struct json_object *config, enum channel ch, void **statep,
    struct provider_result *res)
{
	struct file_state *st;
	struct json_object *v;
	int rc;

	(void)ch;
	*statep = NULL;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return RC_NOMEM;
	rc = provider_config_string(config, "file", "path", 1, &st->path, res);
	if (rc == RC_OK && json_object_object_get_ex(config, "fsync", &v) &&
	    v != NULL) {
		if (!json_object_is_type(v, json_type_boolean)) {
			provider_result_set(res, PROVIDER_FAILED, "file "
			    "provider config: \"fsync\" must be true or false");
			rc = RC_CONFIG;
		} else {
			st->fsync = json_object_get_boolean(v);
		}
	}
	if (rc != RC_OK) {
		free(st);
		return rc;
	}
	*statep = st;
	return RC_OK;
}

/* take the exclusive lock on fd, waiting for other senders */
static int
file_lock(int fd)
{
	int r;

	do {
		r = flock(fd, LOCK_EX);
	} while (r != 0 && errno == EINTR);
	return r;
}

/*
 * Append line (len bytes) to path in one write; errno-based text in res.
 * A write that fails or is cut short (a full disk) would leave a torn line
 * that the retry appends after: the file is cut back to its size before
 * the write.  The lock makes that size ours: no other sender's line can
 * land between fstat(2) and ftruncate(2).  A file that is not a regular
 * one (a pipe, /dev/full) cannot be cut and is not.
 */
static int
file_append(const struct file_state *st, const char *line, size_t len,
    struct provider_result *res)
{
	struct stat sb;
	char why[128];
	ssize_t w;
	int fd, rc = RC_OK;

	fd = open(st->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		provider_result_set(res, PROVIDER_RETRY, "file: could not "
		    "open the spool file: %s", strerror(errno));
		return RC_IO;
	}
	if (file_lock(fd) != 0 || fstat(fd, &sb) != 0) {
		provider_result_set(res, PROVIDER_RETRY, "file: could not "
		    "lock the spool file: %s", strerror(errno));
		close(fd);
		return RC_IO;
	}
	do {
		w = write(fd, line, len);
	} while (w < 0 && errno == EINTR);
	if (w < 0 || (size_t)w != len) {
		snprintf(why, sizeof(why), "%s", w < 0 ? strerror(errno) :
		    "short write");
		provider_result_set(res, PROVIDER_RETRY, "file: could not "
		    "write the spool file: %s", why);
		rc = RC_IO;
		if (S_ISREG(sb.st_mode) && ftruncate(fd, sb.st_size) != 0)
			provider_result_set(res, PROVIDER_RETRY, "file: could "
			    "not write the spool file (%s) nor remove the "
			    "partial line: %s", why, strerror(errno));
	} else if (st->fsync && fsync(fd) != 0) {
		provider_result_set(res, PROVIDER_RETRY, "file: could not "
		    "sync the spool file: %s", strerror(errno));
		rc = RC_IO;
	}
	close(fd);	/* releases the lock */
	return rc;
}

static enum provider_start
file_start(void *state, struct delivery *d, CURL *easy,
    struct provider_result *res)
{
	struct file_state *st = state;
	int rc;

	(void)easy;
	rc = provider_http_body(&d->req, d);
	if (rc == RC_OK)
		rc = buf_append(&d->req, "\n", 1);
	if (rc != RC_OK) {
		provider_result_set(res, PROVIDER_FAILED, "could not build "
		    "the line: %s", rc_str(rc));
		return PROVIDER_DONE;
	}
	if (file_append(st, d->req.data, d->req.len, res) == RC_OK)
		res->outcome = PROVIDER_SENT;
	return PROVIDER_DONE;
}

static void
file_finish(void *state, struct delivery *d, CURL *easy, CURLcode cc,
    struct provider_result *res)
{
	/* never called: file_start always finishes at once */
	(void)state;
	(void)d;
	(void)easy;
	(void)cc;
	provider_result_set(res, PROVIDER_FAILED, "file: unexpected transfer");
}

static void
file_fini(void *state)
{
	free(state);
}

const struct provider provider_file = {
	"file", file_init, file_start, file_finish, file_fini,
};
