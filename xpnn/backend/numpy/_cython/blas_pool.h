/* A thread pool that runs OpenBLAS's parallel work when OpenBLAS's own
 * threads would spin.
 *
 * OpenBLAS's worker threads poll for their next task for
 * 2^OPENBLAS_THREAD_TIMEOUT cycles (by default 2^28, about 0.1 s) before they
 * sleep, and read that setting once, when the library loads. A script or
 * notebook that imports NumPy before xpnn therefore keeps a worker spinning
 * through all of a step's non-BLAS work, where it takes a core from xpnn's
 * own threads (the direct convolution). OpenBLAS 0.3.27 and later accept a
 * function that runs their parallel jobs instead
 * (openblas_set_threads_callback_function); xpnn gives it this one, whose
 * workers poll for XPNN_POOL_SPIN_NS and then sleep on a condition variable.
 *
 * OpenBLAS's jobs of one call wait on each other (a threaded GEMM's jobs
 * exchange packed panels), so all of them must run at the same time, each
 * on its own thread: job 0 on the caller, job i on worker i. One call uses
 * the pool at a time (xp_caller); a call made while one runs on this thread
 * (nested: from a job), or one wanting more than XPNN_POOL_MAX threads, runs
 * on threads started for it. A call is published like a seqlock: xp_gen is
 * odd while the caller writes the call's description and even once it is
 * readable; a worker reads it and checks xp_gen did not move, so a worker
 * that wakes late never runs a job twice or reads a half-written call. Only
 * a call's participants acknowledge it.
 */
#ifndef XPNN_BLAS_POOL_H
#define XPNN_BLAS_POOL_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define XP_RELAX() _mm_pause()
#else
#define XP_RELAX() ((void)0)
#endif

typedef void (*xpnn_dojob_t)(int thread_num, void *jobdata, int dojob_data);

#define XPNN_POOL_MAX 256
/* about OPENBLAS_THREAD_TIMEOUT=15 (2^15 cycles at ~3 GHz) */
#define XPNN_POOL_SPIN_NS 10000L

static pthread_mutex_t xp_caller = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t xp_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t xp_wake = PTHREAD_COND_INITIALIZER;
static int xp_workers = 0;                  /* started; changed under xp_caller */
static long xp_start_gen[XPNN_POOL_MAX + 1];
static atomic_long xp_gen = 0;              /* two more per call; odd while written */
static atomic_int xp_acks = 0;              /* participants done with the current call */
static atomic_long xp_calls = 0;            /* calls served by the pool (tests read it) */
static atomic_long xp_spawned_calls = 0;    /* calls run on threads started for them */
static int xp_atfork_set = 0;
static _Thread_local int xp_busy = 0;      /* this thread runs a job (or a call) now */

/* the current call, written while xp_gen is odd */
static xpnn_dojob_t volatile xp_job;
static char *volatile xp_data;
static volatile size_t xp_elsize;
static volatile int xp_arg, xp_njobs;

static long xp_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000000000L + t.tv_nsec;
}

static int xp_waiting(long g, long seen) {
    return g == seen || (g & 1);
}

static void *xp_worker(void *arg) {
    int me = (int)(size_t)arg;
    long seen = xp_start_gen[me], g = seen;
    xp_busy = 1;
    for (;;) {
        long t0 = xp_now_ns();
        unsigned spins = 0;
        while (xp_waiting(atomic_load_explicit(&xp_gen, memory_order_acquire), seen)) {
            XP_RELAX();
            if ((++spins & 63u) == 0 && xp_now_ns() - t0 > XPNN_POOL_SPIN_NS) {
                pthread_mutex_lock(&xp_lock);
                while (xp_waiting(atomic_load(&xp_gen), seen))
                    pthread_cond_wait(&xp_wake, &xp_lock);
                pthread_mutex_unlock(&xp_lock);
                break;
            }
        }
        xpnn_dojob_t job;
        char *data;
        size_t elsize;
        int jobarg, njobs;
        for (;;) {   /* read the call; again if a newer one began meanwhile */
            g = atomic_load_explicit(&xp_gen, memory_order_acquire);
            if (g & 1) { XP_RELAX(); continue; }
            job = xp_job; data = xp_data; elsize = xp_elsize; jobarg = xp_arg; njobs = xp_njobs;
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&xp_gen, memory_order_relaxed) == g)
                break;
        }
        seen = g;
        if (me < njobs) {
            job(me, data + (size_t)me * elsize, jobarg);
            atomic_fetch_add_explicit(&xp_acks, 1, memory_order_release);
        }
    }
    return NULL;
}

typedef struct { xpnn_dojob_t job; void *data; int i, arg; } xp_oneoff_t;

static void *xp_oneoff(void *p) {
    xp_oneoff_t *o = (xp_oneoff_t *)p;
    xp_busy = 1;
    o->job(o->i, o->data, o->arg);
    return NULL;
}

/* jobs 1.. on threads started for this call. The jobs wait on each other:
   with a thread missing they would wait for ever, so a thread that cannot
   start ends the process with a message instead of a silent hang. */
static void xp_run_spawned(xpnn_dojob_t job, int n, size_t elsize, char *data, int arg) {
    pthread_t *t = (pthread_t *)calloc((size_t)n, sizeof(pthread_t));
    xp_oneoff_t *o = (xp_oneoff_t *)calloc((size_t)n, sizeof(xp_oneoff_t));
    int i;
    if (t == NULL || o == NULL) {
        fprintf(stderr, "xpnn: out of memory starting %d threads for OpenBLAS\n", n - 1);
        abort();
    }
    atomic_fetch_add(&xp_spawned_calls, 1);
    for (i = 1; i < n; i++) {
        o[i].job = job; o[i].data = data + (size_t)i * elsize; o[i].i = i; o[i].arg = arg;
        if (pthread_create(&t[i], NULL, xp_oneoff, &o[i]) != 0) {
            fprintf(stderr, "xpnn: could not start thread %d of %d for OpenBLAS's parallel "
                    "work; set OPENBLAS_NUM_THREADS lower (or XPNN_NO_BLAS_TUNING=1)\n", i, n);
            abort();
        }
    }
    {
        int was = xp_busy;
        xp_busy = 1;
        job(0, data, arg);
        xp_busy = was;
    }
    for (i = 1; i < n; i++)
        pthread_join(t[i], NULL);
    free(t);
    free(o);
}

static void xp_after_fork_in_child(void) {
    /* the child has none of the parent's threads */
    pthread_mutex_init(&xp_caller, NULL);
    pthread_mutex_init(&xp_lock, NULL);
    pthread_cond_init(&xp_wake, NULL);
    xp_workers = 0;
    xp_busy = 0;
}

static int xp_start_workers(int want) {
    if (!xp_atfork_set) {
        if (pthread_atfork(NULL, NULL, xp_after_fork_in_child) != 0)
            return 0;
        xp_atfork_set = 1;
    }
    while (xp_workers < want) {
        pthread_t t;
        pthread_attr_t attr;
        int me = xp_workers + 1, rc;
        xp_start_gen[me] = atomic_load(&xp_gen);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        rc = pthread_create(&t, &attr, xp_worker, (void *)(size_t)me);
        pthread_attr_destroy(&attr);
        if (rc != 0)
            return 0;
        xp_workers = me;
    }
    return 1;
}

/* The function OpenBLAS calls with a parallel call's jobs. */
static void xpnn_blas_pool_run(int sync, xpnn_dojob_t job, int numjobs, size_t elsize,
                               void *jobdata, int arg) {
    char *data = (char *)jobdata;
    (void)sync;   /* OpenBLAS waits for its jobs either way */
    if (numjobs <= 1) {
        if (numjobs == 1)
            job(0, data, arg);
        return;
    }
    if (xp_busy || numjobs - 1 > XPNN_POOL_MAX) {
        xp_run_spawned(job, numjobs, elsize, data, arg);
        return;
    }
    pthread_mutex_lock(&xp_caller);
    if (!xp_start_workers(numjobs - 1)) {
        pthread_mutex_unlock(&xp_caller);
        xp_run_spawned(job, numjobs, elsize, data, arg);
        return;
    }
    atomic_fetch_add_explicit(&xp_gen, 1, memory_order_acq_rel);      /* odd: writing */
    xp_job = job; xp_data = data; xp_elsize = elsize; xp_arg = arg; xp_njobs = numjobs;
    atomic_store(&xp_acks, 0);
    atomic_fetch_add(&xp_calls, 1);
    pthread_mutex_lock(&xp_lock);
    atomic_fetch_add_explicit(&xp_gen, 1, memory_order_release);      /* even: published */
    pthread_cond_broadcast(&xp_wake);
    pthread_mutex_unlock(&xp_lock);
    xp_busy = 1;
    job(0, data, arg);
    xp_busy = 0;
    /* wait as OpenBLAS's own caller does: yielding, never asleep. Challenge
       net step, NumPy first, another process busy on one of two cores:
       300 ms with the caller asleep on a condition variable after 10 us,
       236 ms yielding (and 390 ms when idle workers also yield while they
       poll: they keep pause) */
    while (atomic_load_explicit(&xp_acks, memory_order_acquire) < numjobs - 1)
        sched_yield();
    pthread_mutex_unlock(&xp_caller);
}

/* Start n workers now (at registration, so that a machine that cannot start
   them keeps OpenBLAS's own threads); 1 on success. */
static int xpnn_blas_pool_start(int n) {
    int ok;
    if (n > XPNN_POOL_MAX)
        n = XPNN_POOL_MAX;
    pthread_mutex_lock(&xp_caller);
    ok = xp_start_workers(n);
    pthread_mutex_unlock(&xp_caller);
    return ok;
}

/* for the Python side: the function's address and what the pool did */
static size_t xpnn_blas_pool_address(void) { return (size_t)&xpnn_blas_pool_run; }
static long xpnn_blas_pool_calls(void) { return atomic_load(&xp_calls); }
static long xpnn_blas_pool_spawned_calls(void) { return atomic_load(&xp_spawned_calls); }
static int xpnn_blas_pool_workers(void) { return xp_workers; }

#endif
