"""A stateful test that drives a Pool against a simple model of its queue.
One worker is held by a gate job, so the queue only changes through the
calls made here; each drain compares what ran, in which order and with
which ids, against the model."""
import collections
import threading

from hypothesis import settings, strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, invariant,
                                 precondition, rule)

import fastthreadpool


class Failure(Exception):
    pass


def ok(v):
    return v


def fail(v):
    raise Failure(v)


class PoolModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.pool = fastthreadpool.Pool(1, result_id=True)
        self.queue = collections.deque()  # (job id, kind, value)
        self.ids = set()
        self._hold()

    def _hold(self):
        self.gate = threading.Event()
        started = threading.Event()

        def gate_job():
            started.set()
            self.gate.wait(5)
            return "gate"

        self.gate_id = self.pool.submit(gate_job)
        assert started.wait(3)

    def _new_id(self, jid):
        assert isinstance(jid, int)
        assert jid not in self.ids, "job id reused"
        assert jid != self.gate_id
        self.ids.add(jid)
        return jid

    @rule(v=st.integers())
    def submit(self, v):
        self.queue.append((self._new_id(self.pool.submit(ok, v)), "ok", v))

    @rule(v=st.integers())
    def submit_failing(self, v):
        self.queue.append((self._new_id(self.pool.submit(fail, v)), "fail",
                           v))

    @rule(v=st.integers())
    def submit_first(self, v):
        jid = self._new_id(self.pool.submit_first(ok, v))
        self.queue.appendleft((jid, "ok", v))

    @rule(v=st.integers())
    def submit_done_discard(self, v):
        jid = self._new_id(self.pool.submit_done(ok, False, v))
        self.queue.append((jid, "discard", v))

    @precondition(lambda self: self.queue)
    @rule(data=st.data())
    def cancel_one(self, data):
        entry = data.draw(st.sampled_from(list(self.queue)))
        assert self.pool.cancel(entry[0]) is True
        self.queue.remove(entry)
        assert self.pool.cancel(entry[0]) is False

    @rule()
    def cancel_unknown(self):
        assert self.pool.cancel(max(self.ids | {0}) + 10 ** 6) is False

    @rule()
    def cancel_all(self):
        assert self.pool.cancel() is True
        self.queue.clear()

    @rule()
    def drain(self):
        self.gate.set()
        assert self.pool.wait_idle(5) is True
        expected_done = [(self.gate_id, "gate")]
        expected_failed = []
        for jid, kind, v in self.queue:
            if kind == "ok":
                expected_done.append((jid, v))
            elif kind == "fail":
                expected_failed.append((jid, v))
        assert list(self.pool.done) == expected_done
        failed = [(jid, e.args[0]) for jid, e in self.pool.failed]
        assert failed == expected_failed
        self.pool.done.clear()
        self.pool.failed.clear()
        self.queue.clear()
        self._hold()

    @invariant()
    def queue_matches(self):
        assert len(self.pool.jobs) == len(self.queue)
        assert self.pool.pending == len(self.queue) + 1
        assert self.pool.busy == 1

    def teardown(self):
        self.gate.set()
        self.pool.cancel()
        assert self.pool.shutdown(5) is True


PoolModel.TestCase.settings = settings(max_examples=25,
                                       stateful_step_count=25,
                                       deadline=None, database=None)
TestPoolModel = PoolModel.TestCase
