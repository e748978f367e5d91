// The WebSocket path and the fallback to poll. Tests marked [real WebSocket] need a global
// WebSocket: Node 22+, or Node 20.10+/21 with --experimental-websocket (the "test" script
// passes it); without one they are skipped and only the fallback logic is tested.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startRelayDouble } from '../testkit/relay-double.mjs';
import { recorded, until, sleep } from '../testkit/harness.mjs';

const hasWS = typeof globalThis.WebSocket === 'function';
const real = hasWS ? {} : { skip: 'no global WebSocket in this Node (run with --experimental-websocket on Node 20/21)' };
const FAST = { retryDelay: 20, maxRetryDelay: 200 };

async function withRelay(options, fn) {
  const relay = await startRelayDouble(options);
  try {
    await fn(relay);
  } finally {
    await relay.stop();
  }
}

const pollRequests = (relay) => relay.log.filter((e) => e.path.startsWith('/poll/'));

test('[real WebSocket] ws: opens over WebSocket, echoes text and binary, reports the server close', real, () => withRelay({}, async (relay) => {
  const { c, events, messages, closed } = recorded(relay.url, { ...FAST, token: 'abc' });
  await until(() => c.readyState === c.OPEN);
  assert.equal(c.transport, 'ws');
  assert.equal(c.fallbackReason, null);
  c.send('hi');
  c.send(new Uint8Array([1, 2, 3]));
  await until(() => messages.length === 2);
  assert.equal(messages[0], 'hi');
  assert.deepEqual([...messages[1]], [1, 2, 3]);
  c.send('close:4002:done');
  await closed;
  assert.deepEqual(events.at(-1), { type: 'close', code: 4002, reason: 'done', wasClean: true });
  const up = relay.log.find((e) => e.upgrade);
  assert.equal(up.path, '/ws');
  assert.deepEqual(up.query, { token: 'abc' });
  assert.equal(pollRequests(relay).length, 0);
}));

test('[real WebSocket] ws: a ws:// URL ending in /ws works, and close() is echoed', real, () => withRelay({}, async (relay) => {
  const { c, events, closed } = recorded(`ws://127.0.0.1:${relay.port}/ws`, FAST);
  await until(() => c.readyState === c.OPEN);
  assert.equal(c.transport, 'ws');
  c.close(1000, 'done');
  assert.equal(c.readyState, c.CLOSING);
  await closed;
  assert.deepEqual(events.at(-1), { type: 'close', code: 1000, reason: 'done', wasClean: true });
}));

for (const mode of ['reject400', 'reject404']) {
  test(`[real WebSocket] fallback: upgrade answered ${mode.slice(6)} → poll`, real, () => withRelay({ ws: mode }, async (relay) => {
    const { c, events, messages } = recorded(relay.url, FAST);
    await until(() => c.readyState === c.OPEN);
    assert.equal(c.transport, 'poll');
    assert.match(c.fallbackReason, /before open/);
    assert.deepEqual(events.map((e) => e.type), ['open'], 'the failed attempt is not reported as an error');
    c.send('via poll');
    await until(() => messages.length === 1);
    assert.equal(messages[0], 'via poll');
    assert.ok(relay.log.findIndex((e) => e.upgrade) < relay.log.findIndex((e) => e.path === '/poll/create'));
    c.close();
  }));
}

test('[real WebSocket] fallback: an upgrade that never answers → poll after wsTimeout', real, () => withRelay({ ws: 'hang' }, async (relay) => {
  const t0 = Date.now();
  const { c, messages } = recorded(relay.url, { ...FAST, wsTimeout: 300 });
  await until(() => c.readyState === c.OPEN);
  assert.ok(Date.now() - t0 >= 290);
  assert.equal(c.transport, 'poll');
  assert.match(c.fallbackReason, /did not open within 300 ms/);
  c.send('late but fine');
  await until(() => messages.length === 1);
  c.close();
}));

test('[real WebSocket] transports ["ws"] only: a refused upgrade is an error and close 1006, no poll', real, () => withRelay({ ws: 'reject400' }, async (relay) => {
  const { events, closed } = recorded(relay.url, { ...FAST, transports: ['ws'] });
  await closed;
  assert.deepEqual(events.map((e) => e.type), ['error', 'close']);
  assert.equal(events.at(-1).code, 1006);
  assert.equal(pollRequests(relay).length, 0);
}));

test('fallback: no WebSocket at all → poll without trying', () => withRelay({}, async (relay) => {
  const { c } = recorded(relay.url, { ...FAST, WebSocket: null });
  await until(() => c.readyState === c.OPEN);
  assert.equal(c.transport, 'poll');
  assert.equal(c.fallbackReason, 'WebSocket unavailable');
  assert.equal(relay.log.filter((e) => e.upgrade).length, 0);
  c.close();
}));

test('fallback: a WebSocket that errors before open (a stand-in constructor) → poll', () => withRelay({}, async (relay) => {
  const tried = [];
  class FailingWebSocket {
    constructor(url) {
      tried.push(url);
      setTimeout(() => {
        this.onerror?.({});
        this.onclose?.({ code: 1006, reason: '', wasClean: false });
      }, 10);
    }
    close() {}
  }
  const { c } = recorded(`${relay.url}/?a=1`, { ...FAST, WebSocket: FailingWebSocket, token: 't' });
  await until(() => c.readyState === c.OPEN);
  assert.equal(c.transport, 'poll');
  assert.deepEqual(tried, [`ws://127.0.0.1:${relay.port}/ws?a=1&token=t`]);
  c.close();
}));

test('fallback: transports ["poll", "ws"] uses poll first', () => withRelay({}, async (relay) => {
  const { c } = recorded(relay.url, { ...FAST, transports: ['poll', 'ws'] });
  await until(() => c.readyState === c.OPEN);
  assert.equal(c.transport, 'poll');
  await sleep(50);
  assert.equal(relay.log.filter((e) => e.upgrade).length, 0);
  c.close();
}));
