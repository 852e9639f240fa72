/*
 * auth_worker.c - password hashes verified off the event loop
 *
 * Owns:     the worker threads, their job queue (todo) and the finished
 *           list (done), each job's copies of hash and password.
 * Lifetime: auth_worker_new() to auth_worker_free(), which stops and joins
 *           the threads and drops what is still queued. A job is freed on
 *           the loop after its callback (or instead of it once cancelled).
 * Errors:   a full queue or no memory: auth_worker_submit() returns NULL
 *           and the caller answers 454 (try again later).
 * Context:  submit, cancel and the callbacks on the event-loop thread; the
 *           threads run crypt_r() on their own struct crypt_data and touch
 *           only the lists, under w->mu. The loop is woken by
 *           event_active() on ev_done (libevent is built thread-aware:
 *           evthread_use_pthreads() in main).
 *
 * yescrypt and bcrypt are slow by design (tens of milliseconds): on the
 * loop one login would stall every session. Two threads keep logins from
 * stalling each other much on a 2-core machine; more would only compete
 * with the loop for the cores.
 */
#include "auth/auth.h"
#include "lib/log.h"

#include <crypt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#define AUTH_THREADS_MAX 8

struct auth_job {
	TAILQ_ENTRY(auth_job) entry;
	auth_done_fn *done;          /* NULL once cancelled */
	void    *arg;
	int      ok;
	size_t   passlen;
	char    *hash;
	char    *pass;
};

TAILQ_HEAD(auth_jobq, auth_job);

struct auth_worker {
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	struct auth_jobq todo, done;
	size_t   ntodo;
	int      stop;
	unsigned nthreads;
	pthread_t th[AUTH_THREADS_MAX];
	struct event *ev_done;
};

static void
job_free(struct auth_job *j)
{
	if (j->pass != NULL) {
		OPENSSL_cleanse(j->pass, j->passlen);
		free(j->pass);
	}
	free(j->hash);
	free(j);
}

/* worker_main - take a job, hash, compare in constant time, hand it back */
static void *
worker_main(void *arg)
{
	struct auth_worker *w = arg;
	struct crypt_data *cd = calloc(1, sizeof(*cd));

	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct auth_job *j;
		const char *out;

		while (!w->stop && TAILQ_EMPTY(&w->todo))
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop)
			break;
		j = TAILQ_FIRST(&w->todo);
		TAILQ_REMOVE(&w->todo, j, entry);
		w->ntodo--;
		pthread_mutex_unlock(&w->mu);

		j->ok = 0;
		if (cd != NULL) {
			memset(cd, 0, sizeof(*cd));
			out = crypt_r(j->pass, j->hash, cd);
			/* crypt_r fails with "*0"/"*1" or NULL; a real result has the hash's length */
			if (out != NULL && out[0] == '$' && strlen(out) == strlen(j->hash) &&
			    CRYPTO_memcmp(out, j->hash, strlen(out)) == 0)
				j->ok = 1;
			OPENSSL_cleanse(cd, sizeof(*cd));
		}
		OPENSSL_cleanse(j->pass, j->passlen);

		pthread_mutex_lock(&w->mu);
		TAILQ_INSERT_TAIL(&w->done, j, entry);
		event_active(w->ev_done, EV_READ, 0);
	}
	pthread_mutex_unlock(&w->mu);
	free(cd);
	return NULL;
}

/* done_cb - on the loop: run the callbacks of finished jobs */
static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_worker *w = arg;
	struct auth_jobq q;
	struct auth_job *j;

	(void)fd; (void)what;
	TAILQ_INIT(&q);
	pthread_mutex_lock(&w->mu);
	TAILQ_CONCAT(&q, &w->done, entry);
	pthread_mutex_unlock(&w->mu);
	while ((j = TAILQ_FIRST(&q)) != NULL) {
		TAILQ_REMOVE(&q, j, entry);
		if (j->done != NULL)
			j->done(j->arg, j->ok);
		job_free(j);
	}
}

/* auth_worker_new - see auth.h */
struct auth_worker *
auth_worker_new(struct event_base *base, unsigned nthreads)
{
	struct auth_worker *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	if (nthreads == 0 || nthreads > AUTH_THREADS_MAX)
		nthreads = 2;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	TAILQ_INIT(&w->todo);
	TAILQ_INIT(&w->done);
	if ((w->ev_done = event_new(base, -1, 0, done_cb, w)) == NULL)
		goto fail;
	for (; w->nthreads < nthreads; w->nthreads++)
		if (pthread_create(&w->th[w->nthreads], NULL, worker_main, w) != 0)
			break;
	if (w->nthreads == 0)
		goto fail;
	return w;
fail:
	auth_worker_free(w);
	return NULL;
}

/* auth_worker_free - stop the threads (a running crypt finishes first); takes NULL */
struct auth_worker *
auth_worker_free(struct auth_worker *w)
{
	struct auth_job *j;

	if (w == NULL)
		return NULL;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	for (unsigned i = 0; i < w->nthreads; i++)
		pthread_join(w->th[i], NULL);
	while ((j = TAILQ_FIRST(&w->todo)) != NULL) {
		TAILQ_REMOVE(&w->todo, j, entry);
		job_free(j);
	}
	while ((j = TAILQ_FIRST(&w->done)) != NULL) {
		TAILQ_REMOVE(&w->done, j, entry);
		job_free(j);
	}
	if (w->ev_done != NULL)
		event_free(w->ev_done);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
	return NULL;
}

/* auth_worker_submit - see auth.h */
struct auth_job *
auth_worker_submit(struct auth_worker *w, const char *hash, const char *password, size_t passlen,
    auth_done_fn *done, void *arg)
{
	struct auth_job *j;

	if (w == NULL || (j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->done = done;
	j->arg = arg;
	j->passlen = passlen;
	j->hash = strdup(hash);
	j->pass = malloc(passlen + 1);
	if (j->hash == NULL || j->pass == NULL) {
		job_free(j);
		return NULL;
	}
	memcpy(j->pass, password, passlen);
	j->pass[passlen] = '\0';
	pthread_mutex_lock(&w->mu);
	if (w->ntodo >= AUTH_QUEUE_MAX) {
		pthread_mutex_unlock(&w->mu);
		job_free(j);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&w->todo, j, entry);
	w->ntodo++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return j;
}

/* auth_job_cancel - see auth.h (loop thread: done is only read there) */
void
auth_job_cancel(struct auth_job *j)
{
	if (j != NULL)
		j->done = NULL;
}
