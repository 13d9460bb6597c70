"""Scoring as instances arrive, series completion, and result delivery: two threads beside the receiver.

The scoring worker takes stored-but-unscored instances from the database in
batches, decodes and scores them with the backend, and records the scores.
A series whose last instance arrived ``series_timeout`` seconds ago, and
which has nothing left to score, is complete: the alert policy of ``score``
judges it and its result is committed once, with a delivery per sink. The
delivery worker hands results to the sinks and retries failures with
backoff, so a slow or absent webhook never holds up scoring or receiving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timezone
from pathlib import Path

from tfkt_edge.backends import Backend
from tfkt_edge.dicom import Skip, group_series, reasons
from tfkt_edge.dicom.slices import read_slices
from tfkt_edge.pipeline.decode import stop_broken
from tfkt_edge.pipeline.feed import score_slices
from tfkt_edge.render.document import document
from tfkt_edge.service.database import Database
from tfkt_edge.service.sinks import Sink
from tfkt_edge.verdict.judge import Judge
from tfkt_edge.verdict.policy import AlertPolicy
from tfkt_edge.verdict.result import slice_score

log = logging.getLogger("tfkt_edge.service")
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # then every 60 s
MAX_ATTEMPTS = 60  # about an hour of tries: a rescan alert is no use once the patient has left; then parked


class Loop(threading.Thread):
    """Runs ``step`` until stopped; sleeps until woken (or ``idle`` s) when a step found no work.
    A failing step is logged and tried again: the work it left stays in the database."""

    idle = 0.1

    def __init__(self, name: str, wake: threading.Event | None = None):
        super().__init__(name=name, daemon=True)
        self.wake = wake or threading.Event()
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.wake.set()

    def run(self) -> None:
        failing, last_logged = "", 0.0
        while not self._halt.is_set():
            try:
                busy = self.step()
                if failing:
                    log.warning("%s works again after: %s", self.name, failing)
                    failing = ""
            except Exception as exc:
                # The first failure with its traceback; the same failure again once a minute, in one line.
                message = f"{type(exc).__name__}: {exc}"
                if message != failing:
                    log.exception("%s step failed", self.name)
                    failing, last_logged = message, time.monotonic()
                elif time.monotonic() - last_logged >= 60:
                    log.error("%s step still failing: %s", self.name, message)
                    last_logged = time.monotonic()
                busy = False
            if not busy:
                self.wake.wait(self.idle)
                self.wake.clear()

    def step(self) -> bool:
        raise NotImplementedError


# The skip reason of an instance whose decoding process ended while it alone was being decoded.
DECODER_DIED = "the decoding process ended while decoding this file (killed, out of memory, or a crash in a native decoder)"


class ScoringWorker(Loop):
    """Scores stored instances in batches and completes due series.

    With decoding processes (``make_pool`` given), a process that dies (the out-of-memory killer, a
    native decoder crashing on a hostile file) breaks the pool: the worker starts a new one and scores
    that batch's instances one at a time, so an instance that breaks the pool again is skipped with
    its reason instead of stopping the service."""

    def __init__(self, db: Database, backend: Backend, policy: AlertPolicy, series_timeout: float, sinks: list[str],
                 pool: Executor, batch_size: int = 16, wake: threading.Event | None = None,
                 on_result: Callable[[], None] = lambda: None, make_pool: Callable[[], Executor] | None = None):
        super().__init__("scoring", wake)
        if policy.baselines is not None:
            policy.baselines.require_model(backend.model.identity)
        self.db, self.backend, self.policy, self.timeout = db, backend, policy, series_timeout
        self.judge = Judge(policy, backend.model)  # one judge for the node's life: its policy and model do not change
        self.sinks, self.pool, self.batch_size, self.make_pool = sinks, pool, batch_size, make_pool
        self.on_result = on_result

    def step(self) -> bool:
        """Score one batch of new instances and complete due series; True if there was work."""
        pending = self.db.unprocessed(self.batch_size)
        if pending:
            self.score_instances(pending)
        completed = 0
        for series in self.db.due_series(time.time() - self.timeout):
            completed += self.complete(series)
        return bool(pending) or bool(completed)

    def score_instances(self, pending) -> None:
        try:
            self._score_instances(pending)
        except BrokenProcessPool:
            if self.make_pool is None:
                raise
            log.error("a decoding process ended while %d instance(s) were decoded; scoring them one at a time "
                      "with new processes", len(pending))
            for instance in pending:
                self._renew_pool()
                try:
                    self._score_instances([instance])
                except BrokenProcessPool:
                    log.error("skipping %s: %s", instance[2], DECODER_DIED)
                    self.db.record_scores([], {instance[0]: DECODER_DIED}, [instance[0]])
            self._renew_pool()

    def _renew_pool(self) -> None:
        stop_broken(self.pool)
        self.pool = self.make_pool()  # type: ignore[misc]  # only called when make_pool is given

    def _score_instances(self, pending) -> None:
        refs, skipped = [], {}
        sop_of = {}
        for sop, _, path, _ in pending:
            found = read_slices(path)
            if isinstance(found, Skip):
                skipped[sop] = found.reason
            else:
                refs.extend(found)
                sop_of[str(path)] = sop
        # The same decoding, batching and finite-score check as `score`.
        scored, bad = score_slices(refs, self.backend, self.batch_size, pool=self.pool)
        for skip in bad:
            skipped[sop_of[str(skip.path)]] = skip.reason
        self.db.record_scores([(s.ref, s.learned, s.stats) for s in scored], skipped, [sop for sop, *_ in pending],
                              {sop: received for sop, _, _, received in pending})

    def complete(self, series_uid: str) -> bool:
        rows = self.db.series_slices(series_uid)
        skips = [Skip(path, reason) for path, reason in self.db.series_skips(series_uid)]
        scores = {(ref.sop_instance_uid, ref.frame): (score, stats) for ref, score, stats in rows}
        lost = [f"{Path(path).name}: {reason}" for path, reason in self.db.series_skips(series_uid)
                if reasons.loses_slice(reason)]
        results = [self.judge(series, (slice_score(ref, *scores[(ref.sop_instance_uid, ref.frame)], self.backend.model)
                                   for ref in series.slices), lost)
                   for series in group_series([ref for ref, _, _ in rows])]  # anatomical order, as `score` orders
        payload = document(self.backend.model, results, skips, self.policy.threshold)
        payload["series_instance_uid"] = series_uid
        payload["judged_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        payload["calling_ae"] = self.db.series_callers(series_uid)
        alert = any(r.verdict.alert for r in results)
        event = self.db.complete_series(series_uid, alert, payload, self.sinks)
        if event is not None:
            self.on_result()
        return event is not None


class DeliveryWorker(Loop):
    """Delivers results to one sink, so a slow sink (a webhook timing out) never delays another (the console)."""

    idle = 0.2

    def __init__(self, db: Database, sink: Sink):
        super().__init__(f"deliver-{sink.name}")
        self.db, self.sink = db, sink

    def step(self) -> bool:
        for event_id, attempts, payload in self.db.pending_deliveries(self.sink.name, time.time()):
            if self._halt.is_set():
                break
            try:
                self.sink.deliver(event_id, payload)
            except Exception as exc:
                if attempts + 1 >= MAX_ATTEMPTS:
                    log.error("%s delivery of result %d failed %d times (%s); given up: `tfkt-edge results` lists it",
                              self.sink.name, event_id, attempts + 1, exc)
                    self.db.give_up(event_id, self.sink.name, str(exc))
                    continue
                delay = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS) - 1)]
                log.warning("%s delivery of result %d failed (%s); retrying in %.0f s", self.sink.name, event_id, exc, delay)
                self.db.failed(event_id, self.sink.name, str(exc), time.time() + delay)
            else:
                self.db.delivered(event_id, self.sink.name)
        return False  # wait for the next result, or the next retry time
