/* The team: threads that share a job made of phases, each phase split into the same n_parts parts
 * whoever computes them (see _kernels.pyx, Design 4).
 *
 * A phase starts only when every part of the one before is done: a barrier, as OpenMP's, but
 * one that holds up when the machine is busy. Threads that spin at a barrier while their partner
 * waits for a core turn a shared core into a 20–400× slowdown; a thread that sleeps at every
 * barrier pays a wake-up of tens of microseconds per phase on an idle machine. So the team has
 * two ways of working and chooses between them at run time, by measuring:
 *
 *   team mode   part p is computed by worker p mod n_workers — or, if that worker has not
 *               come for it by the time another is done with its own parts, by the other
 *               (bpfast_team_take); a worker that is done waits for the others, spinning for
 *               a while, then asleep (futex);
 *   solo mode   one worker, the leader, computes every part of every phase in order; the others
 *               sleep until the mode changes.
 *
 * Which worker computes a part never changes what the part computes nor the order in which
 * partial results are combined (that is fixed by the parts), so a job gives the same bits in
 * either mode, whatever the machine's load: only the time differs.
 *
 * The workers are threads of the team's own, started with it and parked (asleep on a futex)
 * between jobs: the thread that submits a job is worker 0 and returns as soon as the job is
 * finished, without waiting for the other workers to notice (a late one, descheduled by a busy
 * machine, would otherwise hold it up, as OpenMP's barrier at the end of a parallel region
 * does). The next job waits for them, if it must, before it starts. A job in solo mode does
 * not call them in at all unless it turns to team mode (bpfast_team_enlist).
 *
 * Two workers on one core: Linux often wakes a thread on its waker's core — in a virtual
 * machine an idle virtual core the host has lent away does not count as idle — and then moves
 * neither of the two, both running all the time (a spinning worker stays "cache-hot"). Team
 * mode then ran [784, 16, 10]'s epoch in 27–34 ms instead of 10–11 (solo mode: 17), the
 * threads found on one core in every slow epoch and on two in every fast one. So in team mode
 * each worker notes its core at the start of every phase, and one that finds another's note of
 * the same core for the same phase moves to a core where no worker is noted
 * (bpfast_team_settle): its affinity narrowed and restored at once, the caller's thread too
 * (only where it runs changes, as the scheduler changes it). For a few milliseconds after a
 * move, waiting workers spin longer before they sleep: the move slows the mover, and a partner
 * that slept meanwhile would be woken onto the mover's core again. A job moves at most
 * BPFAST_TEAM_MOVES times, and not at all while another job of this process runs (two fits at
 * once: the move would land on the other's core).
 *
 * The choice: the seconds per step of the mode in force are measured over windows of about
 * BPFAST_TEAM_WINDOW seconds. At the end of a window the faster mode on record is kept; the other
 * is tried from time to time, less often the more its trials cost (bpfast_team_judge). A trial's
 * first step is set apart and its window starts after it: the first step pays for the change
 * (workers woken and settled) and is where a slow first touch lands — on a VM, the first call
 * into a fresh output after a change of mode took 5–20 times as long in either mode, and a trial
 * judged on that call kept the slower mode for the longest gap. The record lives in the team, which
 * a `fit` keeps for all its epochs.
 * "From time to time" counts the team's own time, spent in jobs: between single calls a program
 * does other work, and on the wall's clock a loop of 50 ms calls with pauses between them tried
 * the losing mode at every other call (`per_example_gradients` on [784, 512, 512, 10], n = 256:
 * 50 ms shared, 75 alone). */
#ifndef BPFAST_TEAM_H
#define BPFAST_TEAM_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__linux__) || defined(__APPLE__)
#define BPFAST_HAVE_THREADS 1
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#else
#define BPFAST_HAVE_THREADS 0
#endif
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define BPFAST_TEAM_WINDOW 2e-3         /* seconds measured before a mode is judged */
#define BPFAST_TEAM_WINDOWS 4           /* windows remembered of each mode */
#define BPFAST_TEAM_TRIAL_GAP 20.0      /* seconds in jobs between trials per second a lost
                                           trial cost */
#define BPFAST_TEAM_MIN_GAP 2e-2        /* seconds in jobs between two trials, at least */
#define BPFAST_TEAM_MAX_GAP 2.0         /* and at most */
#define BPFAST_TEAM_SPIN 1e-4           /* seconds a waiting worker spins before it sleeps */
#define BPFAST_TEAM_MOVES 8              /* moves a job may make at most */
#define BPFAST_TEAM_SETTLING 5e-3       /* seconds after a move during which it spins longer */
#define BPFAST_TEAM_SPIN_SETTLING 2e-3  /* and how long */

/* What a job's `close` returns: the next phase belongs to the same step, or to the next step
 * (the team's clock measures steps), or the job is finished — just after a step (a call of
 * its own is one step), or with no step ended (a job stopped early). */
enum { BPFAST_NEXT_PHASE = 0, BPFAST_NEXT_STEP = 1, BPFAST_FINISHED = 2,
       BPFAST_FINISHED_STEP = 3 };

typedef void (*bpfast_task)(void* job, int part, int n_parts);
typedef int (*bpfast_close)(void* job);

/* The published phase word: a counter, the mode (solo or team) and the leader in solo mode. */
#define BPFAST_SOLO_BIT 0x80u
#define BPFAST_LEADER_MASK 0x7Fu
#define BPFAST_MAX_WORKERS 128
/* Parts of a phase that a worker may take over from another (bpfast_team_take); those past it
 * are computed by their own worker only. */
#define BPFAST_TAKEN_PARTS 256
/* The phase word's counter: 24 bits. */
#define BPFAST_COUNTER_MASK 0xFFFFFFu

typedef struct {
    /* Each on its own cache line: workers spin on `phase` while they count on `done`. */
    _Alignas(64) uint32_t phase;        /* futex word: counter << 8 | solo bit | leader */
    _Alignas(64) uint32_t done;         /* parts done in the current phase */
    _Alignas(64) uint32_t mode_seq;     /* futex word: bumped when solo mode ends, or the job */
    int sleepers;                       /* workers asleep on `phase` */
    int finished;
    /* The choice of mode, kept from one job to the next (written by closers only). */
    _Alignas(64) int solo;              /* the mode in force */
    int trial;                          /* 2: a trial whose first step is to come, 1: on trial */
    int losses;                         /* trials lost in a row */
    double next_trial;                  /* when the mode not in force may be tried again, on
                                           the team's clock (bpfast_team_clock) */
    double worked;                      /* seconds spent in earlier jobs */
    double job_start;                   /* when this job began */
    double windows[2][BPFAST_TEAM_WINDOWS];  /* seconds per step of the last windows, by mode */
    int n_windows[2], next_window[2];
    double window_start;                /* when this job's part of the window began */
    double window_carry;                /* seconds of the window spent in earlier jobs */
    long window_steps;
    int forced;                         /* tests: 1 team, 2 solo, 3 alternate every step; 0 choose */
    long switches;                      /* mode changes so far (for tests and benchmarks) */
    long solo_steps, team_steps;        /* steps taken in each mode so far */
    long moves;                         /* workers moved off a shared core (bpfast_team_move) */
    long taken_over;                    /* parts computed by another worker than their own */
    double held;                        /* tests: seconds the last worker waits before each
                                           phase's parts (as if the machine had it elsewhere) */
    double moved_at;                    /* when the last move was made */
    int moves_left;                     /* moves this job may still make */
    /* The workers 1..n_threads (worker 0 is the thread that submits a job) and their job. */
    _Alignas(64) uint32_t job_seq;      /* futex word: bumped when a job is submitted */
    uint32_t active;                    /* futex word: workers still inside the last job */
    int enlisted;                       /* whether the workers were called into this job */
    int shutdown;
    int n_threads;
    void* job;
    bpfast_task task;
    bpfast_close close;
    int n_parts;
    /* Each part's claim word: the counter of the phase in which it is still to be taken. */
    _Alignas(64) uint32_t claims[BPFAST_TAKEN_PARTS];
    uint64_t cpus[BPFAST_MAX_WORKERS];  /* each worker's note: phase << 32 | (core + 1), 0: none */
    int stuck[BPFAST_MAX_WORKERS];      /* a core each could not move off in this job (-1: none;
                                           set for each job by bpfast_team_run) */
#if BPFAST_HAVE_THREADS
    pthread_t threads[BPFAST_MAX_WORKERS];
#endif
} bpfast_team;

static double bpfast_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double) t.tv_sec + 1e-9 * (double) t.tv_nsec;
}



static inline void bpfast_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void bpfast_sleep_while(uint32_t* word, uint32_t value) {
#if defined(__linux__)
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
#else
    (void) word; (void) value;
    sched_yield();
#endif
}

static void bpfast_wake_all(uint32_t* word) {
#if defined(__linux__)
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, BPFAST_MAX_WORKERS, NULL, NULL, 0);
#else
    (void) word;
#endif
}

/* Jobs running in this process: with two at once (two fits in two Python threads), moving a
 * worker off its partner's core would put it on the other job's, and the teams would chase
 * each other: then none moves, and each judges its modes as it finds them. */
static int bpfast_jobs_running;

/* Worker `me`, found on core `cpu` with another worker: moved to a core where no worker is
 * noted, among those it may use (its affinity, which is then restored: it only needed the move).
 * Returns the core it is on: `cpu` if there is no such core or the system refuses (noted then,
 * and not tried again in this job while it stays on that core). */
static int bpfast_team_move(bpfast_team* team, int me, int cpu) {
#if defined(__linux__)
    cpu_set_t allowed, elsewhere;
    team->stuck[me] = cpu;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return cpu;
    elsewhere = allowed;
    CPU_CLR(cpu, &elsewhere);
    for (int j = 0; j <= team->n_threads; j++) {
        int taken = (int) (__atomic_load_n(&team->cpus[j], __ATOMIC_RELAXED) & 0xFFFFFFFF) - 1;
        if (j != me && taken >= 0 && taken < CPU_SETSIZE) CPU_CLR(taken, &elsewhere);
    }
    if (CPU_COUNT(&elsewhere) == 0 || sched_setaffinity(0, sizeof elsewhere, &elsewhere) != 0)
        return cpu;
    sched_setaffinity(0, sizeof allowed, &allowed);
    team->stuck[me] = -1;
    __atomic_add_fetch(&team->moves, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&team->moves_left, 1, __ATOMIC_RELAXED);
    double now = bpfast_now();
    __atomic_store(&team->moved_at, &now, __ATOMIC_RELAXED);
    return sched_getcpu();
#else
    (void) team; (void) me;
    return cpu;
#endif
}

/* Worker `me`, at the start of phase `phase` (team mode; or calling the others in): note its
 * core, and if another worker noted the same core at the start of this same phase, move
 * (bpfast_team_move). Only notes of this phase count: the scheduler also swaps two workers'
 * cores, and a note from the phase before would then send both moving onto each other. Of two
 * on one core, the one that looks second moves. The scheduler can put two workers together at
 * any wake-up, and the one then last at every barrier never waits: so the check is made at every
 * phase, for a few nanoseconds when nothing is wrong. */
static void bpfast_team_settle(bpfast_team* team, int me, uint32_t phase) {
#if defined(__linux__)
    int cpu = sched_getcpu();
    if (cpu < 0) return;
    uint64_t stamp = (uint64_t) phase << 32;
    if (cpu != team->stuck[me] && __atomic_load_n(&team->moves_left, __ATOMIC_RELAXED) > 0
            && __atomic_load_n(&bpfast_jobs_running, __ATOMIC_RELAXED) == 1) {
        team->stuck[me] = -1;
        for (int j = 0; j <= team->n_threads; j++)
            if (j != me && __atomic_load_n(&team->cpus[j], __ATOMIC_ACQUIRE)
                               == (stamp | (uint64_t) (cpu + 1))) {
                cpu = bpfast_team_move(team, me, cpu);
                break;
            }
    }
    __atomic_store_n(&team->cpus[me], stamp | (uint64_t) (cpu + 1), __ATOMIC_RELEASE);
#else
    (void) team; (void) me; (void) phase;
#endif
}

/* The phase word once it differs from `seen`: spin for BPFAST_TEAM_SPIN seconds, then sleep. */
static uint32_t bpfast_wait_for_phase(bpfast_team* team, uint32_t seen) {
    uint32_t now;
    double start = 0;
    for (long i = 0;; i++) {
        now = __atomic_load_n(&team->phase, __ATOMIC_ACQUIRE);
        if (now != seen) return now;
        bpfast_pause();
        if ((i & 255) == 255) {
            double t = bpfast_now();
            if (start == 0) start = t;
            else {
                double moved_at;
                __atomic_load(&team->moved_at, &moved_at, __ATOMIC_RELAXED);
                if (t - start > (t - moved_at < BPFAST_TEAM_SETTLING ? BPFAST_TEAM_SPIN_SETTLING
                                                                     : BPFAST_TEAM_SPIN)) break;
            }
        }
    }
    __atomic_add_fetch(&team->sleepers, 1, __ATOMIC_SEQ_CST);
    while ((now = __atomic_load_n(&team->phase, __ATOMIC_SEQ_CST)) == seen)
        bpfast_sleep_while(&team->phase, seen);
    __atomic_sub_fetch(&team->sleepers, 1, __ATOMIC_SEQ_CST);
    return now;
}

/* A mode's seconds per step: the median of its last BPFAST_TEAM_WINDOWS windows (0: none), so
 * that one disturbed window does not move it, and a lasting change of the machine shows once it
 * fills half the record. Not the least: a core shared with another program by time slices of a
 * few milliseconds gives the team alternately fast and slow windows (measured under one busy
 * loop: 32 and 100–120 µs a step, 50 alone), and the least of them chose the slower mode. */
static double bpfast_team_estimate(const bpfast_team* team, int mode) {
    int n = team->n_windows[mode];
    double sorted[BPFAST_TEAM_WINDOWS];
    if (n == 0) return 0;
    for (int i = 0; i < n; i++) {
        double value = team->windows[mode][i];
        int j = i;
        for (; j > 0 && sorted[j - 1] > value; j--) sorted[j] = sorted[j - 1];
        sorted[j] = value;
    }
    return n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
}

static void bpfast_team_record(bpfast_team* team, int mode, double seconds_per_step) {
    int i = team->next_window[mode];
    team->windows[mode][i] = seconds_per_step;
    team->next_window[mode] = (i + 1) % BPFAST_TEAM_WINDOWS;
    if (team->n_windows[mode] < BPFAST_TEAM_WINDOWS) team->n_windows[mode]++;
}

/* Try `mode` (a trial) from the next step on: the step after it begins the window the trial is
 * judged on. */
static void bpfast_team_try(bpfast_team* team, int mode) {
    team->trial = 2;
    team->n_windows[mode] = 0;
    team->next_window[mode] = 0;
    if (mode != team->solo) { team->solo = mode; team->switches++; }
}

/* The team's clock: seconds spent in jobs, this one's so far included. */
static double bpfast_team_clock(const bpfast_team* team, double now) {
    return team->worked + (now - team->job_start);
}

/* A window of measurement opens at `now`. */
static void bpfast_team_open_window(bpfast_team* team, double now) {
    team->window_start = now;
    team->window_carry = 0;
    team->window_steps = 0;
}

/* A job begins at `now`, and ends: the window goes on in the next job, short jobs (single calls)
 * adding up; the time between jobs (Python's) is not the team's. A job begins before it waits
 * for the workers of the last one to leave it (bpfast_team_run): in team mode, a worker that a
 * busy machine descheduled after its partner took its parts over holds up the next call by a
 * time slice. Left off the clock, beside one busy loop, a loop of [784, 30, 10] gradients on 32
 * examples took 1.22× the time of one thread, predict on [784, 100, 10] 1.20× (medians of six
 * and four runs of `benchmarks/bench_load.py`'s C4 and C7 loops); on it, 1.13× and 1.05×; idle
 * and beside two busy loops, unchanged within the noise. */
static void bpfast_team_job_begins(bpfast_team* team, double now) {
    team->window_start = team->job_start = now;
}

static void bpfast_team_job_ends(bpfast_team* team, double now) {
    team->window_carry += now - team->window_start;
    team->worked += now - team->job_start;
}

/* At the end of a step (by the closer), at time `now`: count it, and at the end of a window,
 * judge the mode. */
static void bpfast_team_judge_at(bpfast_team* team, int n_workers, double now) {
    if (team->solo) team->solo_steps++; else team->team_steps++;
    if (team->forced) {
        int solo = team->forced == 2 || (team->forced == 3 && !team->solo);
        if (solo != team->solo) { team->solo = solo; team->switches++; }
        return;
    }
    if (n_workers < 2) return;
    team->window_steps++;
    if (team->trial == 2) {
        /* The trial's first step: set apart, the window starts after it. */
        team->trial = 1;
        bpfast_team_open_window(team, now);
        return;
    }
    double elapsed = team->window_carry + (now - team->window_start);
    if (elapsed < BPFAST_TEAM_WINDOW) return;
    double clock = bpfast_team_clock(team, now);
    int mode = team->solo, other = !mode;
    double steps = (double) team->window_steps, measured = elapsed / steps;
    bpfast_team_open_window(team, now);
    bpfast_team_record(team, mode, measured);
    double mine = bpfast_team_estimate(team, mode), theirs = bpfast_team_estimate(team, other);
    if (team->trial) {
        team->trial = 0;
        if (theirs > 0 && measured >= theirs) {
            /* Lost: back to the other mode, and wait before the next trial in proportion to
             * what this one cost (its first step too, at its window's rate), doubled at each loss
             * in a row: trials then take a bounded share of the time (1 / BPFAST_TEAM_TRIAL_GAP
             * at most) however costly they are. */
            double cost = (steps + 1) * (measured - theirs);
            double gap = BPFAST_TEAM_TRIAL_GAP * cost;
            for (int i = 0; i < team->losses && gap < BPFAST_TEAM_MAX_GAP; i++) gap *= 2;
            if (gap < BPFAST_TEAM_MIN_GAP) gap = BPFAST_TEAM_MIN_GAP;
            if (gap > BPFAST_TEAM_MAX_GAP) gap = BPFAST_TEAM_MAX_GAP;
            team->losses++;
            team->next_trial = clock + gap;
            team->solo = other;
            team->switches++;
        } else {
            team->losses = 0;                   /* won: this mode stays */
            team->next_trial = clock + BPFAST_TEAM_MIN_GAP;
        }
        return;
    }
    /* The other mode is tried when it was never measured, when it was measured faster than
     * the mode in force is now (the machine changed), or when its turn has come. */
    if (theirs == 0 || theirs < mine || clock >= team->next_trial)
        bpfast_team_try(team, other);
}

static void bpfast_team_judge(bpfast_team* team, int n_workers) {
    bpfast_team_judge_at(team, n_workers, bpfast_now());
}

/* Tests: a job of one step (a single call) on a team of `n_workers`, as if it took `seconds` in
 * the mode in force, on the team's clock of jobs rather than the wall's. */
static void bpfast_team_replay(bpfast_team* team, int n_workers, double seconds) {
    double start = team->worked;
    bpfast_team_job_begins(team, start);
    bpfast_team_judge_at(team, n_workers, start + seconds);
    bpfast_team_job_ends(team, start + seconds);
}

/* Call the workers into the job in progress: at its start in team mode, or when a job begun in
 * solo mode turns to team mode. A job done in solo mode from start to end never wakes them: a
 * worker woken only to go back to sleep costs the leader a wake-up, and the next job the wait
 * for that worker to leave — a time slice when a busy machine has descheduled it. */
static void bpfast_team_enlist(bpfast_team* team, int me) {
    bpfast_team_settle(team, me, __atomic_load_n(&team->phase, __ATOMIC_RELAXED) >> 8);
    team->enlisted = 1;
    team->active = (uint32_t) team->n_threads;
    __atomic_add_fetch(&team->job_seq, 1, __ATOMIC_SEQ_CST);
    bpfast_wake_all(&team->job_seq);
}

static uint32_t bpfast_phase_word(uint32_t counter, int solo, int leader) {
    return (counter << 8) | (solo ? BPFAST_SOLO_BIT : 0u) | ((uint32_t) leader & BPFAST_LEADER_MASK);
}

/* Whether the calling worker takes part `part` of the phase whose counter is `counter` — each
 * part is taken once a phase: its claim word holds the counter of the phase in which it is still
 * to be taken, and taking it moves the word on to the next phase's. A worker late for a phase
 * already over finds none of its parts to take. Parts past BPFAST_TAKEN_PARTS are their own
 * worker's alone. */
static int bpfast_team_take(bpfast_team* team, int part, uint32_t counter) {
    if (part >= BPFAST_TAKEN_PARTS) return 1;
    uint32_t expected = counter & BPFAST_COUNTER_MASK;
    return __atomic_compare_exchange_n(&team->claims[part], &expected,
                                       (counter + 1) & BPFAST_COUNTER_MASK, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/* Part `part` of the phase counted `counter`, computed if the calling worker takes it
 * (bpfast_team_take); returns whether it did. */
static int bpfast_team_compute(bpfast_team* team, int part, uint32_t counter, void* job,
                               bpfast_task task, int n_parts) {
    if (!bpfast_team_take(team, part, counter)) return 0;
    task(job, part, n_parts);
    return 1;
}

/* Tests: the last worker kept away for `held` seconds before each phase's parts. */
static void bpfast_team_hold(const bpfast_team* team, int me) {
    if (team->held <= 0 || team->solo || me == 0 || me != team->n_threads) return;
    struct timespec t;
    t.tv_sec = (time_t) team->held;
    t.tv_nsec = (long) ((team->held - (double) t.tv_sec) * 1e9);
    nanosleep(&t, NULL);
}

/* Worker `me` of `n_workers`' share of the job in progress (bpfast_team_run); returns when
 * `close` has said it is finished. In team mode, a worker done with its own parts takes those
 * whose worker has not come for them yet: a worker the machine has put aside (a busy core, a
 * virtual core lent away, a wake-up from sleep) no longer holds up the phase by all of its
 * parts' time. The parts compute the same whoever takes them (see above). */
static void bpfast_team_work(bpfast_team* team, int me, int n_workers, int n_parts,
                             void* job, bpfast_task task, bpfast_close close) {
    uint32_t seen = __atomic_load_n(&team->phase, __ATOMIC_ACQUIRE);
    for (;;) {
        if (__atomic_load_n(&team->finished, __ATOMIC_ACQUIRE)) return;
        int solo = (seen & BPFAST_SOLO_BIT) != 0;
        int leader = (int) (seen & BPFAST_LEADER_MASK);
        if (solo && leader != me) {
            /* Asleep until solo mode ends (or the job does); then back to the phase in force. */
            uint32_t mode_seq = __atomic_load_n(&team->mode_seq, __ATOMIC_SEQ_CST);
            uint32_t now = __atomic_load_n(&team->phase, __ATOMIC_SEQ_CST);
            if (now == seen && !__atomic_load_n(&team->finished, __ATOMIC_SEQ_CST))
                bpfast_sleep_while(&team->mode_seq, mode_seq);
            seen = __atomic_load_n(&team->phase, __ATOMIC_ACQUIRE);
            continue;
        }
        if (!solo) bpfast_team_settle(team, me, seen >> 8);
        bpfast_team_hold(team, me);
        uint32_t mine = 0, counter = seen >> 8;
        int first = solo ? 0 : me, stride = solo ? 1 : n_workers;
        for (int part = first; part < n_parts; part += stride)
            mine += bpfast_team_compute(team, part, counter, job, task, n_parts);
        for (int part = 0; !solo && part < n_parts && part < BPFAST_TAKEN_PARTS; part++) {
            if (!bpfast_team_compute(team, part, counter, job, task, n_parts)) continue;
            mine++;
            __atomic_add_fetch(&team->taken_over, 1, __ATOMIC_RELAXED);
        }
        if (mine && __atomic_add_fetch(&team->done, mine, __ATOMIC_ACQ_REL) == (uint32_t) n_parts) {
            /* The last part of the phase: this worker closes it and publishes the next one. */
            team->done = 0;
            int what = close(job);
            int was_solo = team->solo;
            if (what == BPFAST_NEXT_STEP || what == BPFAST_FINISHED_STEP)
                bpfast_team_judge(team, n_workers);
            if (what == BPFAST_FINISHED_STEP) what = BPFAST_FINISHED;
            if (what == BPFAST_FINISHED) {
                bpfast_team_job_ends(team, bpfast_now());
                __atomic_store_n(&team->finished, 1, __ATOMIC_SEQ_CST);
            }
            uint32_t next = bpfast_phase_word((seen >> 8) + 1, team->solo, me);
            __atomic_store_n(&team->phase, next, __ATOMIC_SEQ_CST);
            if ((was_solo && !team->solo) || what == BPFAST_FINISHED) {
                __atomic_add_fetch(&team->mode_seq, 1, __ATOMIC_SEQ_CST);
                bpfast_wake_all(&team->mode_seq);
            }
            if (!team->solo && !team->enlisted && what != BPFAST_FINISHED && team->n_threads > 0)
                bpfast_team_enlist(team, me);
            if (__atomic_load_n(&team->sleepers, __ATOMIC_SEQ_CST) > 0)
                bpfast_wake_all(&team->phase);
            seen = next;
            continue;
        }
        seen = bpfast_wait_for_phase(team, seen);
    }
}

#if BPFAST_HAVE_THREADS
typedef struct { bpfast_team* team; int me; } bpfast_worker_start;

/* A worker's life: asleep until a job is submitted, its share of the job, asleep again. */
static void* bpfast_worker(void* argument) {
    bpfast_worker_start start = *(bpfast_worker_start*) argument;
    free(argument);
    bpfast_team* team = start.team;
    uint32_t seen = 0;
    for (;;) {
        uint32_t now;
        /* Calls come one after another (an optimizer's loop): spin a while for the next job
         * before sleeping, which would add a wake-up to each. */
        double waiting_since = bpfast_now();
        for (long i = 0; (now = __atomic_load_n(&team->job_seq, __ATOMIC_ACQUIRE)) == seen; i++) {
            bpfast_pause();
            if ((i & 255) == 255 && bpfast_now() - waiting_since > BPFAST_TEAM_SPIN) break;
        }
        while ((now = __atomic_load_n(&team->job_seq, __ATOMIC_ACQUIRE)) == seen)
            bpfast_sleep_while(&team->job_seq, seen);
        seen = now;
        if (__atomic_load_n(&team->shutdown, __ATOMIC_ACQUIRE)) return NULL;
        bpfast_team_work(team, start.me, team->n_threads + 1, team->n_parts, team->job,
                         team->task, team->close);
        if (__atomic_sub_fetch(&team->active, 1, __ATOMIC_ACQ_REL) == 0)
            bpfast_wake_all(&team->active);
    }
}
#endif

/* Forget what was measured (a job of another kind comes: its times are not comparable). The
 * first step in team mode is then set apart as a trial's is: it pays for cold caches and the
 * workers' first wake-up (a fresh team's first per-example call, recorded for team mode at
 * 195 ms where its calls take 12, let solo mode win at 25). */
static void bpfast_team_forget(bpfast_team* team) {
    team->solo = team->losses = 0;
    team->trial = 2;                    /* its window opens after the first step, set apart */
    team->next_trial = 0;
    team->n_windows[0] = team->n_windows[1] = 0;
    team->next_window[0] = team->next_window[1] = 0;
}

/* A team of up to n_workers workers (the submitting thread and n_workers − 1 threads of its
 * own, fewer if the system refuses more), on its own cache lines; NULL if memory is short.
 * bpfast_team_free stops its threads and releases it. */
static bpfast_team* bpfast_team_new(int n_workers) {
    void* memory = NULL;
    if (posix_memalign(&memory, 64, sizeof(bpfast_team)) != 0) return NULL;
    bpfast_team* team = (bpfast_team*) memory;
    memset(team, 0, sizeof *team);
    bpfast_team_forget(team);
#if BPFAST_HAVE_THREADS
    if (n_workers > BPFAST_MAX_WORKERS) n_workers = BPFAST_MAX_WORKERS;
    /* The workers take no signals: Ctrl-C goes to the threads Python knows. */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    for (int me = 1; me < n_workers; me++) {
        bpfast_worker_start* start = (bpfast_worker_start*) malloc(sizeof *start);
        if (start == NULL) break;
        start->team = team;
        start->me = me;
        if (pthread_create(&team->threads[me - 1], NULL, bpfast_worker, start) != 0) {
            free(start);
            break;
        }
        team->n_threads++;
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
#else
    (void) n_workers;
#endif
    return team;
}

/* Until the workers of the last job have all left it. */
static void bpfast_team_wait_idle(bpfast_team* team) {
    uint32_t active;
    while ((active = __atomic_load_n(&team->active, __ATOMIC_ACQUIRE)) != 0)
        bpfast_sleep_while(&team->active, active);
}

static void bpfast_team_free(bpfast_team* team) {
    if (team == NULL) return;
#if BPFAST_HAVE_THREADS
    bpfast_team_wait_idle(team);
    __atomic_store_n(&team->shutdown, 1, __ATOMIC_RELEASE);
    __atomic_add_fetch(&team->job_seq, 1, __ATOMIC_SEQ_CST);
    bpfast_wake_all(&team->job_seq);
    for (int i = 0; i < team->n_threads; i++) pthread_join(team->threads[i], NULL);
#endif
    free(team);
}

/* Run a job on the team, the calling thread being worker 0; returns when `close` has said it is
 * finished. The job's parts are the same for any number of workers (n_parts). */
static void bpfast_team_run(bpfast_team* team, int n_parts, void* job, bpfast_task task,
                            bpfast_close close) {
    /* The wait for a worker still in the last job is this job's time: a cost of team mode
     * (bpfast_team_job_begins). */
    double begun = bpfast_now();
    bpfast_team_wait_idle(team);
    team->finished = 0;
    team->done = 0;
    team->sleepers = 0;
    team->phase = bpfast_phase_word(0, team->solo, 0);
    bpfast_team_job_begins(team, begun);
    team->job = job;
    team->task = task;
    team->close = close;
    team->n_parts = n_parts;
    for (int p = 0; p < n_parts && p < BPFAST_TAKEN_PARTS; p++)
        team->claims[p] = 0;                        /* to be taken in the phase counted 0 */
    team->enlisted = 0;
    team->moves_left = BPFAST_TEAM_MOVES;
    for (int i = 0; i <= team->n_threads; i++) {     /* the last job's notes are not this one's */
        team->cpus[i] = 0;
        team->stuck[i] = -1;
    }
    __atomic_add_fetch(&bpfast_jobs_running, 1, __ATOMIC_RELAXED);
    if (team->n_threads > 0 && !team->solo) bpfast_team_enlist(team, 0);
    bpfast_team_work(team, 0, team->n_threads + 1, n_parts, job, task, close);
    __atomic_sub_fetch(&bpfast_jobs_running, 1, __ATOMIC_RELAXED);
}

#endif
