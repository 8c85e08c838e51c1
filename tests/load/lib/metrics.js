'use strict';
/**
 * Custom metrics, recorded through Artillery's event emitter so they are aggregated, reported
 * every 10 s and written to the JSON report with Artillery's own (vusers.*, errors.*).
 *
 * Every name is documented in docs/load-testing.md; tools/load reads them to build the HTML
 * report and its pass/fail table.
 */
const { PerformanceObserver, constants, performance } = require('node:perf_hooks');

class Metrics {
  constructor(events) {
    this.events = events;
  }

  counter(name, value = 1) {
    this.events.emit('counter', name, value);
  }

  histogram(name, value) {
    this.events.emit('histogram', name, value);
  }
}

/**
 * Once a second, the worst event-loop delay of the load generator in that second, as the
 * histogram loadgen.event_loop_delay_ms: a 50 ms timer notes how late it fires. A generator that
 * cannot keep up shows here first, and its own delay is part of every latency it measures.
 */
class EventLoopWatch {
  constructor(tickMs = 50) {
    this.tickMs = tickMs;
    this.timer = null;
    this.gc = null;
  }

  /** Start reporting through `metrics` (idempotent: the first VU of a worker starts it). */
  start(metrics) {
    if (this.timer) return;
    // Each garbage collection's pause, so a stalled generator can be told from a slow gateway.
    this.gc = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const major = entry.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR;
        metrics.histogram(major ? 'loadgen.gc_major_ms' : 'loadgen.gc_other_ms', entry.duration);
      }
    });
    this.gc.observe({ entryTypes: ['gc'] });
    let expected = performance.now() + this.tickMs;
    let worst = 0;
    let ticks = 0;
    const ticksPerReport = Math.round(1000 / this.tickMs);
    this.timer = setInterval(() => {
      const now = performance.now();
      worst = Math.max(worst, now - expected);
      expected = now + this.tickMs;
      if (++ticks === ticksPerReport) {
        metrics.histogram('loadgen.event_loop_delay_ms', worst);
        metrics.histogram('loadgen.heap_used_mb', process.memoryUsage().heapUsed / 2 ** 20);
        worst = 0;
        ticks = 0;
      }
    }, this.tickMs);
    this.timer.unref();
  }
}

module.exports = { Metrics, EventLoopWatch };
