'use strict';
/**
 * Artillery processor: simulated clinicians working on patient charts through collabgate.
 *
 * Every scenario (baseline, stress, spike, soak) runs the same flow, shaped by its variables:
 *
 *   loop (whileTrue: onShift):
 *     connect    mint this user's JWT, open /ws (Authorization: Bearer), wait for CONNECTED
 *     joinChart  JOIN_RESOURCE the user's chart (rooms of `roomSize` users), load its Y.js state
 *     work       until the session ends: a Y.js edit every `updateEverySeconds`, a HEARTBEAT every
 *                `heartbeatEverySeconds`, a lock on a chart section every `lockEverySeconds`
 *                (held `lockHoldSeconds`, then released)
 *     leave      LEAVE_RESOURCE, close 1000
 *
 * A user's shift lasts `holdSeconds`; with `sessionSeconds` shorter than that, the user
 * reconnects (same identity, same Y.js replica, a fresh token) at the end of each session, as a
 * browser tab reloading would (the soak uses this to exercise connection set-up and teardown).
 *
 * Why the processor owns the WebSocket instead of Artillery's `ws` engine: the protocol answers
 * requests by `ref`, with peers' broadcasts interleaved, and the latencies that matter (update →
 * its Y_UPDATE_ACK, update → a peer's copy, LOCK_ACQUIRE → its reply) need one handler for the
 * socket's whole life. The ws engine's `send`/`capture` steps match the *next* frame, replace the
 * handler at every step, and report a socket error after the handshake through the scenario's
 * callback a second time. Artillery stays the scheduler and the metrics pipeline: phases, arrival
 * rates, virtual users, aggregation every 10 s, the JSON report.
 *
 * Metrics (docs/load-testing.md has the full list):
 *   histograms  collabgate.update_ack_ms, collabgate.peer_delivery_ms, collabgate.lock_acquire_ms,
 *               collabgate.connect_ms, collabgate.join_ms, collabgate.lock_release_ms,
 *               collabgate.heartbeat_rtt_ms, loadgen.event_loop_delay_ms
 *   counters    collabgate.errors.<WS code>, collabgate.timeouts.<request>,
 *               collabgate.unanswered.<request>, collabgate.connect_failed.<reason>,
 *               collabgate.dropped.<close code>, collabgate.requests.<request>,
 *               collabgate.sessions.opened/closed, collabgate.deliveries(_missed),
 *               collabgate.lock.granted/denied, collabgate.frames_sent/received
 */
const crypto = require('node:crypto');
const { performance } = require('node:perf_hooks');
const { threadId } = require('node:worker_threads');

const { ChartReplica } = require('./lib/chart');
const { EventLoopWatch, Metrics } = require('./lib/metrics');
const { ConnectFailed, GatewaySession, RequestFailed } = require('./lib/session');
const { TokenMinter } = require('./lib/token');

/** Chart sections a clinician may lock while editing (locks on `*` would block the room). */
const SECTIONS = ['vitals', 'medications', 'allergies', 'history', 'assessment', 'plan',
  'orders', 'fluids', 'wound-care', 'pain', 'nutrition', 'discharge'];

/** State shared by the virtual users of this Artillery worker (one per worker thread). */
const worker = {
  // Distinguishes this run's users and charts from any earlier run against the same gateway.
  tag: `${crypto.randomBytes(3).toString('hex')}${threadId}`,
  arrivals: 0,
  /** resourceId -> Set<Clinician> joined to it */
  rooms: new Map(),
  /** `${userId}#${sequence}` -> {sentAt, resourceId, waiting: Set<Clinician>} */
  inFlight: new Map(),
  minter: null,
  loopWatch: new EventLoopWatch(),
  sweeper: null
};

function minter() {
  if (worker.minter === null) worker.minter = TokenMinter.fromEnvironment();
  return worker.minter;
}

/** The scenario's variables, as numbers, with the defaults documented in docs/load-testing.md. */
function settingsOf(vars) {
  const number = (name, fallback) => {
    const value = vars[name];
    if (value === undefined || value === '') return fallback;
    const parsed = Number(value);
    if (!Number.isFinite(parsed)) throw new Error(`variable ${name} is not a number: ${value}`);
    return parsed;
  };
  const holdSeconds = number('holdSeconds', 60);
  return {
    holdSeconds,
    sessionSeconds: number('sessionSeconds', holdSeconds),
    roomSize: Math.max(1, Math.round(number('roomSize', 5))),
    charts: Math.max(1, Math.round(number('charts', 100000))),
    chartType: vars.chartType || 'patient',
    role: vars.role || 'nurse',
    updateEverySeconds: number('updateEverySeconds', 6),
    heartbeatEverySeconds: number('heartbeatEverySeconds', 30),
    lockEverySeconds: number('lockEverySeconds', 30),
    lockHoldSeconds: number('lockHoldSeconds', 5),
    replyTimeoutSeconds: number('replyTimeoutSeconds', 10),
    connectTimeoutSeconds: number('connectTimeoutSeconds', 10)
  };
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Run `action` every `seconds` until `until` (performance.now() ms) or until `signal` aborts.
 * The first run is at a random offset within one interval, so users do not act in lockstep;
 * later runs keep a fixed rate however long an action took.
 */
async function every(seconds, until, signal, action) {
  if (!(seconds > 0)) return;
  const interval = seconds * 1000;
  let next = performance.now() + Math.random() * interval;
  while (!signal.aborted) {
    await sleep(next - performance.now(), signal);
    if (signal.aborted || performance.now() >= until) return;
    await action();
    next += interval;
  }
}

/** Requests that fail are already counted by the session; the user carries on, as a client would. */
function countedFailure(error) {
  if (error instanceof RequestFailed) return;
  throw error;
}

/** Every second: peers that have not received an update within the reply timeout missed it. */
function startSweeper(metrics, timeoutMs) {
  if (worker.sweeper) return;
  worker.sweeper = setInterval(() => {
    const oldest = performance.now() - timeoutMs;
    for (const [key, entry] of worker.inFlight) {
      if (entry.sentAt > oldest) continue;
      metrics.counter('collabgate.deliveries_missed', entry.waiting.size);
      worker.inFlight.delete(key);
    }
  }, 1000);
  worker.sweeper.unref();
}

class Clinician {
  constructor(settings) {
    this.settings = settings;
    const index = worker.arrivals++;
    const chart = Math.floor(index / settings.roomSize) % settings.charts;
    this.userId = `load-${worker.tag}-${index}`;
    this.resourceId = `${settings.chartType}:load-${worker.tag}-${chart}`;
    this.replica = new ChartReplica(this.userId);
    this.shiftEndsAt = performance.now() + settings.holdSeconds * 1000;
    this.session = null;
    this.metrics = null;
    this.outstanding = new Set();
  }

  room() {
    let members = worker.rooms.get(this.resourceId);
    if (members === undefined) {
      members = new Set();
      worker.rooms.set(this.resourceId, members);
    }
    return members;
  }

  /** Stop expecting deliveries to this user and forget it in the room. */
  leaveRoom() {
    const members = worker.rooms.get(this.resourceId);
    if (members === undefined) return;
    members.delete(this);
    if (members.size === 0) worker.rooms.delete(this.resourceId);
    for (const [key, entry] of worker.inFlight) {
      if (entry.resourceId !== this.resourceId || !entry.waiting.delete(this)) continue;
      if (entry.waiting.size === 0) worker.inFlight.delete(key);
    }
  }

  onBroadcast(frame) {
    if (frame.type !== 'Y_UPDATE' || frame.resourceId !== this.resourceId) return;
    const received = performance.now();
    const sequence = this.replica.applyRemote(frame.update, frame.userId);
    const key = `${frame.userId}#${sequence}`;
    const entry = worker.inFlight.get(key);
    if (entry === undefined || !entry.waiting.delete(this)) {
      // Arrived after the sweep counted it missed, or the receiver joined while it was in flight.
      this.metrics.counter('collabgate.deliveries_untracked');
      return;
    }
    this.metrics.histogram('collabgate.peer_delivery_ms', received - entry.sentAt);
    this.metrics.counter('collabgate.deliveries');
    if (entry.waiting.size === 0) worker.inFlight.delete(key);
  }

  track(promise) {
    this.outstanding.add(promise);
    promise.finally(() => this.outstanding.delete(promise));
  }

  sendUpdate() {
    const { sequence, update } = this.replica.edit();
    const key = `${this.userId}#${sequence}`;
    const peers = [...this.room()].filter((peer) => peer !== this);
    const entry = { sentAt: performance.now(), resourceId: this.resourceId, waiting: new Set(peers) };
    if (peers.length > 0) worker.inFlight.set(key, entry);
    this.metrics.counter('collabgate.updates.sent');
    const reply = this.session
      .request({ type: 'Y_UPDATE', resourceId: this.resourceId, update })
      .then(({ ms }) => {
        this.metrics.histogram('collabgate.update_ack_ms', ms);
        this.metrics.counter('collabgate.updates.acked');
      })
      .catch((error) => {
        // A refused update is not relayed: no peer is owed a copy.
        if (error.kind === 'error') worker.inFlight.delete(key);
        countedFailure(error);
      });
    this.track(reply);
  }

  heartbeat() {
    const reply = this.session
      .request({ type: 'HEARTBEAT' })
      .then(({ ms }) => this.metrics.histogram('collabgate.heartbeat_rtt_ms', ms))
      .catch(countedFailure);
    this.track(reply);
  }

  async lockCycle(until, signal) {
    const { lockHoldSeconds, replyTimeoutSeconds } = this.settings;
    const target = `section:${SECTIONS[Math.floor(Math.random() * SECTIONS.length)]}`;
    const lock = { resourceId: this.resourceId, target };
    try {
      const acquired = await this.session.request({
        type: 'LOCK_ACQUIRE',
        ...lock,
        ttlMs: Math.round((lockHoldSeconds + 2 * replyTimeoutSeconds) * 1000)
      });
      this.metrics.histogram('collabgate.lock_acquire_ms', acquired.ms);
      if (acquired.frame.type !== 'LOCK_ACQUIRED') {
        this.metrics.counter('collabgate.lock.denied'); // a colleague holds it: not an error
        return;
      }
      this.metrics.counter('collabgate.lock.granted');
      await sleep(Math.min(lockHoldSeconds * 1000, until - performance.now()), signal);
      if (!this.session.isOpen) return;
      const released = await this.session.request({ type: 'LOCK_RELEASE', ...lock });
      this.metrics.histogram('collabgate.lock_release_ms', released.ms);
    } catch (error) {
      countedFailure(error);
    }
  }

  /** Close the socket without ceremony (after a failure); the drop, if any, is counted. */
  abandon() {
    this.leaveRoom();
    if (this.session) this.session.ws.terminate();
  }
}

/** A short name for Artillery's errors.<name> counter. */
function failureName(error) {
  if (error instanceof ConnectFailed) return `connect_failed.${error.reason}`;
  if (error instanceof RequestFailed) return `${error.type}.${error.code || error.kind}`;
  return error.message;
}

/** Run one flow step; on failure, clean up, record the reason with Artillery, rethrow. */
async function step(context, events, body) {
  const metrics = new Metrics(events);
  try {
    await body(metrics);
  } catch (error) {
    context.clinician?.abandon();
    events.emit('error', failureName(error));
    throw error;
  }
}

async function connect(context, events) {
  await step(context, events, async (metrics) => {
    const settings = settingsOf(context.vars);
    worker.loopWatch.start(metrics);
    startSweeper(metrics, settings.replyTimeoutSeconds * 1000);
    if (context.clinician === undefined) context.clinician = new Clinician(settings);
    const clinician = context.clinician;
    clinician.metrics = metrics;
    const remaining = (clinician.shiftEndsAt - performance.now()) / 1000;
    const session = new GatewaySession({
      url: context.vars.target,
      token: minter().mint(clinician.userId, {
        role: settings.role,
        ttlSeconds: Math.max(remaining, settings.sessionSeconds) + 600
      }),
      metrics,
      replyTimeoutMs: settings.replyTimeoutSeconds * 1000,
      connectTimeoutMs: settings.connectTimeoutSeconds * 1000
    });
    session.onBroadcast = (frame) => clinician.onBroadcast(frame);
    clinician.session = session;
    await session.open();
  });
}

async function joinChart(context, events) {
  await step(context, events, async (metrics) => {
    const clinician = context.clinician;
    const { frame, ms } = await clinician.session.request({
      type: 'JOIN_RESOURCE',
      resourceId: clinician.resourceId,
      mode: 'editor'
    });
    metrics.histogram('collabgate.join_ms', ms);
    clinician.replica.loadState(frame.state);
    clinician.room().add(clinician);
  });
}

async function work(context, events) {
  await step(context, events, async () => {
    const clinician = context.clinician;
    const { session, settings } = clinician;
    const until = Math.min(performance.now() + settings.sessionSeconds * 1000, clinician.shiftEndsAt);
    const stop = new AbortController();
    const finish = setTimeout(() => stop.abort(), Math.max(0, until - performance.now()));
    session.closed.then(() => stop.abort());
    await Promise.all([
      every(settings.updateEverySeconds, until, stop.signal, () => clinician.sendUpdate()),
      every(settings.heartbeatEverySeconds, until, stop.signal, () => clinician.heartbeat()),
      every(settings.lockEverySeconds, until, stop.signal, () =>
        clinician.lockCycle(until, stop.signal)
      )
    ]);
    clearTimeout(finish);
    await Promise.allSettled([...clinician.outstanding]);
    if (!session.isOpen) {
      const { code } = await session.closed;
      throw new Error(`dropped.${code}`);
    }
  });
}

async function leave(context, events) {
  await step(context, events, async () => {
    const clinician = context.clinician;
    clinician.leaveRoom();
    await clinician.session
      .request({ type: 'LEAVE_RESOURCE', resourceId: clinician.resourceId })
      .catch(countedFailure);
    await clinician.session.close();
  });
}

/** `whileTrue` of the flow's loop: another session while the shift has a second left. */
function onShift(context, next) {
  const clinician = context.clinician;
  return next(clinician !== undefined && clinician.shiftEndsAt - performance.now() > 1000);
}

module.exports = { connect, joinChart, work, leave, onShift, settingsOf };
