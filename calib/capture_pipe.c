/* capture_pipe.c — writes the capture loop's windows into the capture file, inline or on one
 * writer thread (capture_pipe.h). A mutex and one condition variable hand a single job over;
 * the thread is the only caller of the capture writer (and so of HDF5) while it runs. Not the
 * loop (capture.c) and not the file format (capture_h5.c). */
#include "capture_pipe.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kvq_capture_pipe {
    kvq_capture_writer *w;
    uint32_t n_slots, seq_len;
    size_t n;                     /* seq_len * kv_dim: elements of one tensor of one layer */
    float *sq[2];                 /* (seq_len, kv_dim) squared gradients, or NULL */
    int threaded;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;                  /* a job is submitted and not yet waited for */
    int working;                  /* the thread has not finished the pending job */
    int quit;
    kvq_capture_job job;
    kvq_status st;                /* of the last job */
    char why[1024];
};

static void square(float *out, const float *g, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = g[i] * g[i];
}

/* begin, every slot, commit: what the serial loop did, in the same order. */
static kvq_status write_job(kvq_capture_pipe *p, const kvq_capture_job *j, char *why, size_t why_len) {
    kvq_status st = kvq_capture_begin(p->w, j->window_start, p->seq_len, why, why_len);
    for (uint32_t slot = 0; slot < p->n_slots && !st; slot++) {
        const float *const *t = j->tensors + (size_t)slot * 4;
        const float *fk = t[2], *fv = t[3];
        if (j->square && fk && fv) {
            square(p->sq[0], fk, p->n);
            square(p->sq[1], fv, p->n);
            fk = p->sq[0];
            fv = p->sq[1];
        }
        st = kvq_capture_put_layer(p->w, slot, t[0], t[1], fk, fv, why, why_len);
    }
    return st ? st : kvq_capture_commit(p->w, why, why_len);
}

static void *writer_main(void *arg) {
    kvq_capture_pipe *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->working && !p->quit) pthread_cond_wait(&p->cv, &p->mu);
        if (!p->working) break;   /* quit with nothing to write */
        kvq_capture_job job = p->job;
        pthread_mutex_unlock(&p->mu);
        char why[sizeof p->why] = "";
        kvq_status st = write_job(p, &job, why, sizeof why);
        pthread_mutex_lock(&p->mu);
        p->st = st;
        memcpy(p->why, why, sizeof why);
        p->working = 0;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

kvq_status kvq_capture_pipe_start(kvq_capture_pipe **out, kvq_capture_writer *w, uint32_t n_slots, uint32_t seq_len,
                                  uint32_t kv_dim, int threaded, int sq, char *why, size_t why_len) {
    *out = NULL;
    kvq_capture_pipe *p = calloc(1, sizeof *p);
    if (!p) return KVQ_ERR_NOMEM;
    p->w = w;
    p->n_slots = n_slots;
    p->seq_len = seq_len;
    p->n = (size_t)seq_len * kv_dim;   /* both < 2^32: fits */
    if (sq && (!(p->sq[0] = malloc(p->n * sizeof(float))) || !(p->sq[1] = malloc(p->n * sizeof(float))))) {
        snprintf(why, why_len, "cannot allocate %zu bytes for the squared gradients", 2 * p->n * sizeof(float));
        kvq_capture_pipe_stop(p);
        return KVQ_ERR_NOMEM;
    }
    if (threaded) {
        int err = pthread_mutex_init(&p->mu, NULL);
        if (!err && (err = pthread_cond_init(&p->cv, NULL))) pthread_mutex_destroy(&p->mu);
        if (!err && (err = pthread_create(&p->th, NULL, writer_main, p))) {
            pthread_cond_destroy(&p->cv);
            pthread_mutex_destroy(&p->mu);
        }
        if (err) {
            snprintf(why, why_len, "cannot start the capture writer thread: %s", strerror(err));
            kvq_capture_pipe_stop(p);
            return KVQ_ERR_NOMEM;
        }
        p->threaded = 1;
    }
    *out = p;
    return KVQ_OK;
}

void kvq_capture_pipe_submit(kvq_capture_pipe *p, const kvq_capture_job *job) {
    if (!p->threaded) {
        p->why[0] = 0;
        p->st = write_job(p, job, p->why, sizeof p->why);
        p->pending = 1;
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->job = *job;
    p->pending = p->working = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

kvq_status kvq_capture_pipe_wait(kvq_capture_pipe *p, int *had_job, char *why, size_t why_len) {
    if (p->threaded) {
        pthread_mutex_lock(&p->mu);
        while (p->working) pthread_cond_wait(&p->cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    int had = p->pending;
    kvq_status st = had ? p->st : KVQ_OK;
    if (st && why && why_len) snprintf(why, why_len, "%s", p->why);
    p->pending = 0;
    if (had_job) *had_job = had;
    return st;
}

void kvq_capture_pipe_stop(kvq_capture_pipe *p) {
    if (!p) return;
    if (p->threaded) {
        pthread_mutex_lock(&p->mu);
        p->quit = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->th, NULL);
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
    }
    free(p->sq[0]);
    free(p->sq[1]);
    free(p);
}
