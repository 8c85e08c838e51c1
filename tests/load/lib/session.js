'use strict';
/**
 * One WebSocket to the gateway's /ws endpoint, speaking docs/protocol.md.
 *
 * Requests carry a `ref`; the reply with the same `ref` settles the request's promise, so a
 * latency is always "this request's send → its own reply", whatever broadcasts arrive in between.
 * Frames without a `ref` (peers' Y_UPDATEs, presence, lock changes) go to `onBroadcast`.
 *
 * Timings use performance.now() in the load generator's process. They include the generator's
 * own event-loop delay, which the processor measures separately (loadgen.event_loop_delay_ms),
 * so a saturated generator shows up as such instead of as a slow gateway.
 */
const { performance } = require('node:perf_hooks');
const WebSocket = require('ws');

class RequestFailed extends Error {
  /** kind: 'error' (an ERROR reply; code = WS_xxxx), 'timeout' or 'closed'. */
  constructor(kind, type, code, message) {
    super(`${type}: ${kind}${code ? ` ${code}` : ''}${message ? ` (${message})` : ''}`);
    this.kind = kind;
    this.type = type;
    this.code = code;
  }
}

class ConnectFailed extends Error {
  /** reason: a short metric-friendly word, e.g. WS_1001, http_503, ECONNREFUSED, timeout. */
  constructor(reason, detail) {
    super(`connect failed: ${reason}${detail ? ` (${detail})` : ''}`);
    this.reason = reason;
  }
}

class GatewaySession {
  /**
   * @param {object} options
   * @param {string} options.url           ws://host:port/ws
   * @param {string} options.token         JWT, sent as `Authorization: Bearer`
   * @param {import('./metrics').Metrics} options.metrics
   * @param {number} options.replyTimeoutMs  a request without a reply this long is a timeout
   * @param {number} options.connectTimeoutMs
   */
  constructor({ url, token, metrics, replyTimeoutMs = 10000, connectTimeoutMs = 10000 }) {
    this.url = url;
    this.token = token;
    this.metrics = metrics;
    this.replyTimeoutMs = replyTimeoutMs;
    this.connectTimeoutMs = connectTimeoutMs;
    this.ws = null;
    this.pending = new Map();
    this.nextRef = 1;
    this.closing = false;
    this.isOpen = false;
    this.onBroadcast = () => {};
    /** Settles when the socket closes: {code, dropped} (dropped = we did not ask for it). */
    this.closed = new Promise((resolve) => {
      this._resolveClosed = resolve;
    });
  }

  /** Open the socket and wait for CONNECTED; records collabgate.connect_ms. */
  open() {
    const started = performance.now();
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (reason, detail) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.metrics.counter(`collabgate.connect_failed.${reason}`);
        this.closing = true;
        this.ws.terminate();
        reject(new ConnectFailed(reason, detail));
      };
      const timer = setTimeout(() => fail('timeout'), this.connectTimeoutMs);

      this.ws = new WebSocket(this.url, {
        headers: { Authorization: `Bearer ${this.token}` },
        handshakeTimeout: this.connectTimeoutMs
      });
      this.ws.on('unexpected-response', (_request, response) => {
        fail(`http_${response.statusCode}`);
      });
      this.ws.on('error', (error) => {
        if (!settled) fail(error.code || 'socket_error', error.message);
        // After CONNECTED an error is always followed by 'close', which counts the drop.
      });
      this.ws.on('message', (data) => {
        this.metrics.counter('collabgate.frames_received');
        let frame;
        try {
          frame = JSON.parse(data.toString());
        } catch {
          this.metrics.counter('collabgate.errors.BAD_FRAME');
          return;
        }
        if (!settled) {
          if (frame.type === 'CONNECTED') {
            settled = true;
            clearTimeout(timer);
            this.isOpen = true;
            this.metrics.histogram('collabgate.connect_ms', performance.now() - started);
            this.metrics.counter('collabgate.sessions.opened');
            resolve(frame);
          } else {
            fail(frame.type === 'ERROR' ? frame.code : `unexpected_${frame.type}`, frame.message);
          }
          return;
        }
        this._dispatch(frame);
      });
      this.ws.on('close', (code) => {
        if (!settled) fail(`closed_${code}`);
        const dropped = this.isOpen && !this.closing;
        if (this.isOpen) {
          this.metrics.counter('collabgate.sessions.closed');
          if (dropped) this.metrics.counter(`collabgate.dropped.${code}`);
        }
        this.isOpen = false;
        for (const [ref, request] of this.pending) {
          this.pending.delete(ref);
          clearTimeout(request.timer);
          this.metrics.counter(`collabgate.unanswered.${request.type}`);
          request.reject(new RequestFailed('closed', request.type, String(code)));
        }
        this._resolveClosed({ code, dropped });
      });
    });
  }

  _dispatch(frame) {
    const request = frame.ref === undefined ? undefined : this.pending.get(frame.ref);
    if (request === undefined) {
      if (frame.type === 'ERROR') this.metrics.counter(`collabgate.errors.${frame.code}`);
      this.onBroadcast(frame);
      return;
    }
    this.pending.delete(frame.ref);
    clearTimeout(request.timer);
    if (frame.type === 'ERROR') {
      this.metrics.counter(`collabgate.errors.${frame.code}`);
      request.reject(new RequestFailed('error', request.type, frame.code, frame.message));
    } else {
      request.resolve({ frame, ms: performance.now() - request.sentAt });
    }
  }

  /**
   * Send a request and resolve with {frame, ms} when its reply arrives; rejects with
   * RequestFailed on an ERROR reply, a timeout or a closed socket (each counted).
   */
  request(message) {
    if (!this.isOpen) {
      return Promise.reject(new RequestFailed('closed', message.type));
    }
    const ref = String(this.nextRef++);
    this.metrics.counter(`collabgate.requests.${message.type}`);
    const frame = JSON.stringify({ ...message, ref });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.pending.delete(ref)) return;
        this.metrics.counter(`collabgate.timeouts.${message.type}`);
        reject(new RequestFailed('timeout', message.type));
      }, this.replyTimeoutMs);
      // The clock starts when the frame is ready and handed to the socket.
      this.pending.set(ref, { type: message.type, resolve, reject, timer, sentAt: performance.now() });
      this.metrics.counter('collabgate.frames_sent');
      this.ws.send(frame);
    });
  }

  /** Close normally (1000) and wait for the socket to be gone. */
  async close() {
    if (this.ws && this.ws.readyState !== WebSocket.CLOSED) {
      this.closing = true;
      this.ws.close(1000, 'done');
      const timer = setTimeout(() => this.ws.terminate(), 5000);
      await this.closed;
      clearTimeout(timer);
    }
  }
}

module.exports = { GatewaySession, RequestFailed, ConnectFailed };
