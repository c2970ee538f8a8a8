"""Teams of threads lent to `fit` and to single calls, kept between them.

A team's threads (`bpfast._kernels.Team`) sleep between jobs, and starting them costs tens of
microseconds — more than a small call takes. So finished teams wait here to be lent again, each
with what it measured of the machine (whether sharing pays, `_team.h`) for the kind of job it
last served, and a job goes to a team of its kind where one waits: a loop of calls learns once,
even one that takes turns between several kinds. A team serves one job at a time: two calls at
once, in two Python threads, get two teams. A team of one worker has no threads and nothing to
measure: each Python thread keeps its own, lent without the pool's lock (`predict` on one digit
spent 1.3 of its 10 µs getting one from the pool).
After a fork the child starts with none: the parent's threads do not exist there.
"""
import os
import threading

from . import _kernels

#: Idle teams kept, for each number of workers.
MAX_IDLE = 4

_lock = threading.Lock()
_idle = {}                      # n_workers → teams waiting
_forked_away = []               # a forked child's inherited teams: never freed, never used
_alone = threading.local()      # each Python thread's team of one worker


def _after_fork():
    global _lock, _idle
    _forked_away.extend(lent for teams in _idle.values() for lent, _ in teams)
    _lock, _idle = threading.Lock(), {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class team:
    """``with team(n_workers, kind) as lent:`` a team of n_workers workers (the caller and its
    threads) for the duration of one job. ``kind`` says what the job is (a shape, a batch,
    parts): a team that last served another kind forgets what it measured. ``forced`` (tests)
    asks for a new team in that fixed mode, not a pooled one. (A class, not a generator: a call
    of a few dozen microseconds enters one at every call.)"""

    __slots__ = ("n_workers", "kind", "forced", "lent")

    def __init__(self, n_workers, kind, forced=0):
        self.n_workers, self.kind, self.forced = n_workers, kind, forced

    def __enter__(self):
        n_workers, kind = self.n_workers, self.kind
        if self.forced:
            self.lent = _kernels.Team(n_workers, self.forced)
            return self.lent
        if n_workers == 1:
            lent = getattr(_alone, "team", None)
            if lent is None:
                lent = _alone.team = _kernels.Team(1)
            return lent
        with _lock:
            waiting = _idle.setdefault(n_workers, [])
            lent = last = None
            # The team that last served this kind, if one waits: a loop of calls of several
            # kinds (the gradient, then the cost; norms, then a step) keeps what each learned.
            for i in range(len(waiting) - 1, -1, -1):
                if waiting[i][1] == kind:
                    lent, last = waiting.pop(i)
                    break
            else:
                if len(waiting) >= MAX_IDLE:
                    lent, last = waiting.pop(0)     # the one left waiting longest
        if lent is None:
            lent = _kernels.Team(n_workers)
        elif last != kind:
            lent.forget()
        self.lent = lent
        return lent

    def __exit__(self, *exc):
        if self.forced or self.n_workers == 1:
            return False
        with _lock:
            waiting = _idle.setdefault(self.n_workers, [])
            waiting.append((self.lent, self.kind))
            if len(waiting) > MAX_IDLE:
                waiting.pop(0)
        return False
