'use strict';
/**
 * One user's replica of a patient chart: a real Y.js document (the `yjs` package, the library
 * the gateway's browser clients use), edited locally and kept in sync with what the gateway
 * relays.
 *
 * Every edit replaces the user's own entry in the chart's `observations` map with a fresh
 * vital-signs record, as a nurse charting a round would. The update sent is exactly what Y.js
 * emits for that change (v1 encoding, about 150 bytes), and peers apply what they receive. Because
 * a user only ever overwrites its own entry, Y.js merges the superseded records and the document
 * keeps a steady size over hours: a soak measures the gateway, not an ever-growing document.
 *
 * Each record carries the user's edit sequence number, so a peer that applies the update can tell
 * which edit it received (peer delivery latency) without any side channel.
 */
const Y = require('yjs');

const NOTES = [
  'patient resting comfortably',
  'pain controlled, reassess in 1 h',
  'IV site clean and dry',
  'ambulated to chair with assistance',
  'tolerating oral fluids',
  'dressing changed, wound edges approximated',
  'family updated at bedside',
  'awaiting lab results'
];

function pick(values) {
  return values[Math.floor(Math.random() * values.length)];
}

function randomInt(min, max) {
  return min + Math.floor(Math.random() * (max - min + 1));
}

class ChartReplica {
  constructor(userId) {
    this.userId = userId;
    this.key = `obs:${userId}`;
    this.doc = new Y.Doc();
    this.observations = this.doc.getMap('observations');
    this.sequence = 0;
    this.lastLocalUpdate = null;
    this.doc.on('update', (update, origin) => {
      if (origin === this) this.lastLocalUpdate = update;
    });
  }

  /** Apply the whole document as the gateway sent it in RESOURCE_STATE (base64 v1 update). */
  loadState(base64State) {
    if (base64State) Y.applyUpdate(this.doc, Buffer.from(base64State, 'base64'), 'gateway');
  }

  /** Make the next edit; returns its sequence number and the base64 Y.js update to send. */
  edit() {
    const sequence = ++this.sequence;
    this.doc.transact(() => {
      this.observations.set(this.key, {
        seq: sequence,
        at: Date.now(),
        hr: randomInt(55, 110),
        bp: `${randomInt(100, 150)}/${randomInt(60, 95)}`,
        spo2: randomInt(92, 100),
        temp: Math.round((36 + Math.random() * 2) * 10) / 10,
        note: pick(NOTES)
      });
    }, this);
    const update = this.lastLocalUpdate;
    this.lastLocalUpdate = null;
    return { sequence, update: Buffer.from(update).toString('base64') };
  }

  /**
   * Apply a peer's update; returns the sequence number of that peer's edit it carried (or
   * undefined when the update did not touch the peer's entry).
   */
  applyRemote(base64Update, fromUserId) {
    Y.applyUpdate(this.doc, Buffer.from(base64Update, 'base64'), 'gateway');
    const record = this.observations.get(`obs:${fromUserId}`);
    return record ? record.seq : undefined;
  }

  destroy() {
    this.doc.destroy();
  }
}

module.exports = { ChartReplica };
