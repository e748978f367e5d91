// Poll mode against the relay double: the section 8 API, redelivery by ack, retries, closes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startRelayDouble } from '../testkit/relay-double.mjs';
import { recorded, until, sleep, activeTimers } from '../testkit/harness.mjs';

const POLL = { transports: ['poll'], retryDelay: 20, maxRetryDelay: 200 };

async function withRelay(options, fn) {
  const relay = await startRelayDouble(options);
  try {
    await fn(relay);
  } finally {
    await relay.stop();
  }
}

const polls = (relay) => relay.log.filter((e) => e.path.startsWith('/poll/j/'));
const sends = (relay) => relay.log.filter((e) => e.path.startsWith('/poll/s/'));

test('poll: opens, echoes text and binary in order, with the right content types', () => withRelay({}, async (relay) => {
  const { c, events, messages } = recorded(relay.url, POLL);
  assert.equal(c.readyState, c.CONNECTING);
  assert.throws(() => c.send('early'), { name: 'InvalidStateError' });
  await until(() => c.readyState === c.OPEN, 5000, 'open');
  assert.equal(c.transport, 'poll');
  assert.deepEqual(events[0], { type: 'open', transport: 'poll' });
  c.send('héllo');
  c.send(new Uint8Array([0, 1, 2, 255]).buffer);
  c.send(new Uint16Array([0x0102, 0x0304]).subarray(1)); // a view: only its own bytes
  c.send(new Blob([new Uint8Array([7, 8, 9])]));
  c.send('');
  await until(() => messages.length === 5, 5000, 'five echoes');
  assert.equal(messages[0], 'héllo');
  assert.deepEqual([...messages[1]], [0, 1, 2, 255]);
  assert.deepEqual([...messages[2]], [...Buffer.from(new Uint16Array([0x0304]).buffer)]);
  assert.deepEqual([...messages[3]], [7, 8, 9]);
  assert.equal(messages[4], '');
  const types = sends(relay).map((e) => e.contentType);
  assert.deepEqual(types, ['text/plain;charset=utf-8', 'application/octet-stream', 'application/octet-stream', 'application/octet-stream', 'text/plain;charset=utf-8']);
  assert.deepEqual(relay.last.inbox.map((m) => m.type), ['text', 'binary', 'binary', 'binary', 'text']);
  assert.equal(c.bufferedAmount, 0);
  c.close();
}));

test('poll: every poll carries ack = last seq delivered, starting at 0', () => withRelay({}, async (relay) => {
  const { c, messages } = recorded(relay.url, POLL);
  await until(() => c.readyState === c.OPEN);
  for (let i = 1; i <= 3; i++) {
    c.send(`m${i}`);
    await until(() => messages.length === i);
  }
  await until(() => relay.last.acks.length >= 4);
  const acks = relay.last.acks;
  assert.equal(acks[0], 0);
  assert.ok(acks.every((a) => a !== null), 'ack always sent');
  assert.deepEqual(acks.slice(-1), [3]);
  for (let i = 1; i < acks.length; i++) assert.ok(acks[i] >= acks[i - 1], 'acks never go back');
  c.close();
}));

test('poll: token, target and the URL query reach create; ttl is sent', () => withRelay({}, async (relay) => {
  const { c } = recorded(`${relay.url}/?tenant=a`, { ...POLL, token: 't0k', target: 'ws://up/x', pollTtl: 1234 });
  await until(() => c.readyState === c.OPEN);
  assert.deepEqual(relay.last.params, { tenant: 'a', token: 't0k', target: 'ws://up/x' });
  await until(() => polls(relay).length >= 1);
  assert.equal(polls(relay)[0].query.ttl, '1234');
  c.close();
}));

for (const cut of ['headers', 'body']) {
  test(`poll: an answer cut after its ${cut} is fetched again by ack: no loss, no duplicate`, () => withRelay({ echo: false }, async (relay) => {
    const { c, messages, events } = recorded(relay.url, POLL);
    await until(() => c.readyState === c.OPEN);
    await until(() => relay.last.held, 5000, 'a held poll');
    const sid = relay.last.id;
    relay.push(sid, 'text', 'one');
    await until(() => messages.length === 1);
    // The next answer (two, three) is cut; the client must poll again with ack=1.
    relay.faults.poll.push({ cut });
    relay.push(sid, 'text', 'two');
    relay.push(sid, 'binary', Buffer.from([1, 2, 3]));
    await until(() => messages.length === 3);
    relay.push(sid, 'text', 'four');
    await until(() => messages.length === 4);
    await sleep(100);
    assert.deepEqual(messages.map((m) => (typeof m === 'string' ? m : [...m])), ['one', 'two', [1, 2, 3], 'four']);
    const cutAnswers = relay.last.answers.filter((a) => a.some((m) => m.seq === 2));
    assert.ok(cutAnswers.length >= 2, 'seq 2 was sent twice (once cut)');
    assert.ok(relay.last.acks.filter((a) => a === 1).length >= 2, 're-polled with ack=1');
    assert.equal(events.filter((e) => e.type === 'error').length, 0);
    c.close();
  }));
}

test('poll: messages the relay sends again are dropped by seq', () => withRelay({ echo: false }, async (relay) => {
  const { c, messages } = recorded(relay.url, POLL);
  await until(() => c.readyState === c.OPEN);
  await until(() => relay.last.held);
  const sid = relay.last.id;
  relay.push(sid, 'text', 'a');
  relay.push(sid, 'text', 'b');
  await until(() => messages.length === 2);
  relay.faults.poll.push({ replayFrom: 1 }); // the next answer repeats seq 1 and 2
  relay.push(sid, 'text', 'c');
  await until(() => messages.length === 3);
  await sleep(100);
  assert.deepEqual(messages, ['a', 'b', 'c']);
  assert.ok(relay.last.answers.some((a) => a.length && a[0].seq === 1 && a.some((m) => m.seq === 2)), 'the replay happened');
  c.close();
}));

test('poll: 503 with Retry-After on send is retried after the delay, once, in order', () => withRelay({}, async (relay) => {
  const { c, messages } = recorded(relay.url, POLL);
  await until(() => c.readyState === c.OPEN);
  relay.faults.send.push({ status: 503, retryAfter: 1 });
  const t0 = Date.now();
  c.send('first');
  c.send('second');
  assert.ok(c.bufferedAmount > 0);
  await until(() => messages.length === 2, 5000);
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= 950, `Retry-After respected (${elapsed} ms)`);
  assert.deepEqual(messages, ['first', 'second']);
  assert.deepEqual(relay.last.inbox.map((m) => m.data.toString()), ['first', 'second']);
  assert.equal(sends(relay).length, 3);
  assert.equal(c.bufferedAmount, 0);
  c.close();
}));

test('poll: a send lost on the network before the relay took it is retried, no loss, no duplicate', () => withRelay({}, async (relay) => {
  const { c, messages } = recorded(relay.url, POLL);
  await until(() => c.readyState === c.OPEN);
  relay.faults.send.push({ destroy: 'before' }, { status: 503 });
  c.send('x');
  c.send('y');
  await until(() => messages.length === 2);
  assert.deepEqual(relay.last.inbox.map((m) => m.data.toString()), ['x', 'y']);
  assert.equal(sends(relay).length, 4);
  c.close();
}));

test('poll: the documented limit: a send whose answer is lost after the relay took it arrives twice', () => withRelay({}, async (relay) => {
  const { c, messages } = recorded(relay.url, POLL);
  await until(() => c.readyState === c.OPEN);
  relay.faults.send.push({ destroy: 'after' });
  c.send('dup');
  await until(() => relay.last.inbox.length === 2);
  assert.deepEqual(relay.last.inbox.map((m) => m.data.toString()), ['dup', 'dup']);
  await until(() => messages.length === 2);
  c.close();
}));

test('poll: a close record ends the client with its code after the messages before it', () => withRelay({ echo: false }, async (relay) => {
  const { c, messages, events, closed } = recorded(relay.url, POLL);
  await until(() => c.readyState === c.OPEN);
  await until(() => relay.last.held);
  const sid = relay.last.id;
  relay.push(sid, 'text', 'last words');
  relay.closeSession(sid, 4001, 'go away');
  await closed;
  assert.deepEqual(messages, ['last words']);
  assert.deepEqual(events.at(-1), { type: 'close', code: 4001, reason: 'go away', wasClean: true });
  assert.equal(events.filter((e) => e.type === 'error').length, 0);
  assert.equal(c.readyState, c.CLOSED);
  const n = relay.log.length;
  await sleep(200);
  assert.equal(relay.log.length, n, 'no request after close');
}));

test('poll: 403 on a poll (session gone, no close record) closes with 1006', () => withRelay({}, async (relay) => {
  const { c, events, closed } = recorded(relay.url, POLL);
  await until(() => c.readyState === c.OPEN);
  await until(() => relay.last.held);
  relay.kill(relay.last.id);
  await closed;
  assert.deepEqual(events.at(-1), { type: 'close', code: 1006, reason: 'poll session gone (HTTP 403)', wasClean: false });
}));

test('poll: 403 on a send re-polls and reports the close record', () => withRelay({ echo: false }, async (relay) => {
  const { c, events, closed } = recorded(relay.url, POLL);
  await until(() => c.readyState === c.OPEN);
  await until(() => relay.last.held);
  // The session ended with a close record not yet polled (the held poll is not answered):
  // the send sees 403 first, and the client must re-poll to learn the code.
  relay.last.closeRecord = { type: 'close', code: 1008, reason: 'policy' };
  relay.faults.send.push({ status: 403 });
  c.send('too late');
  await closed;
  assert.deepEqual(events.at(-1), { type: 'close', code: 1008, reason: 'policy', wasClean: true });
}));

test('poll: 413 on a send closes with 1009', () => withRelay({ maxMessageSize: 10 }, async (relay) => {
  const { c, events, closed } = recorded(relay.url, POLL);
  await until(() => c.readyState === c.OPEN);
  c.send('this is longer than ten bytes');
  await closed;
  assert.deepEqual(events.slice(-2).map((e) => e.type), ['error', 'close']);
  assert.equal(events.at(-1).code, 1009);
}));

test('poll: close() sends what was queued, then POST /poll/c; nothing is left running', () => withRelay({}, async (relay) => {
  const timersBefore = activeTimers();
  const { c, events, closed } = recorded(relay.url, POLL);
  await until(() => c.readyState === c.OPEN);
  await until(() => relay.last.held);
  relay.faults.send.push({ status: 503, retryAfter: 0 });
  c.send('a');
  c.send('b');
  c.close(4000, 'bye');
  assert.equal(c.readyState, c.CLOSING);
  c.send('dropped'); // like WebSocket: ignored once closing
  await closed;
  assert.deepEqual(relay.last.inbox.map((m) => m.data.toString()), ['a', 'b']);
  assert.ok(relay.last.closedByClient);
  const cIdx = relay.log.findIndex((e) => e.path.startsWith('/poll/c/'));
  assert.ok(cIdx > relay.log.findLastIndex((e) => e.path.startsWith('/poll/s/')), 'close after the sends');
  assert.deepEqual(events.at(-1), { type: 'close', code: 4000, reason: 'bye', wasClean: true });
  const n = relay.log.length;
  await sleep(300);
  assert.equal(relay.log.length, n, 'no request after close');
  assert.equal(activeTimers(), timersBefore, 'no timer left');
}));

test('poll: close() without a code reports 1005; bad codes throw like WebSocket', () => withRelay({}, async (relay) => {
  const { c, events, closed } = recorded(relay.url, POLL);
  await until(() => c.readyState === c.OPEN);
  assert.throws(() => c.close(1006), { name: 'InvalidAccessError' });
  assert.throws(() => c.close(1000, 'x'.repeat(124)), { name: 'SyntaxError' });
  c.close();
  await closed;
  assert.deepEqual(events.at(-1), { type: 'close', code: 1005, reason: '', wasClean: true });
}));

test('poll: close() while connecting ends at once with 1006 and leaves nothing running', () => withRelay({}, async (relay) => {
  const timersBefore = activeTimers();
  const { c, events, closed } = recorded(relay.url, POLL);
  c.close();
  await closed;
  assert.deepEqual(events.map((e) => e.type), ['error', 'close']);
  assert.equal(events.at(-1).code, 1006);
  await sleep(100);
  assert.equal(activeTimers(), timersBefore);
}));

test('poll: polls are retried with backoff while the relay is unreachable, then it gives up with 1006', async () => {
  const relay = await startRelayDouble({});
  const { c, events, closed } = recorded(relay.url, { ...POLL, maxRetryTime: 600 });
  await until(() => c.readyState === c.OPEN);
  await until(() => relay.last.held);
  const timersBefore = activeTimers();
  await relay.stop();
  await closed;
  assert.deepEqual(events.slice(-2).map((e) => e.type), ['error', 'close']);
  assert.equal(events.at(-1).code, 1006);
  assert.match(events.at(-1).reason, /gave up after/);
  await sleep(50);
  assert.ok(activeTimers() <= timersBefore, 'no timer left');
});

test('poll: a poll that is retried after network errors resumes delivery', () => withRelay({ echo: false }, async (relay) => {
  const { c, messages } = recorded(relay.url, POLL);
  await until(() => c.readyState === c.OPEN);
  await until(() => relay.last.held);
  relay.faults.poll.push({ cut: 'headers' }, { cut: 'body' }, { cut: 'headers' });
  relay.push(relay.last.id, 'text', 'survives');
  await until(() => messages.length === 1);
  await sleep(100);
  assert.deepEqual(messages, ['survives']);
  c.close();
}));

test('poll: create refused closes with 1006 and the reason', () => withRelay({ createStatus: 403 }, async (relay) => {
  const { events, closed } = recorded(relay.url, POLL);
  await closed;
  assert.deepEqual(events.map((e) => e.type), ['error', 'close']);
  assert.equal(events.at(-1).code, 1006);
  assert.match(events.at(-1).reason, /HTTP 403: refused by the double/);
}));

test('poll: a handler that calls close() stops the delivery of the rest of the answer', () => withRelay({ echo: false }, async (relay) => {
  const { c, messages, closed } = recorded(relay.url, POLL);
  await until(() => c.readyState === c.OPEN);
  await until(() => relay.last.held);
  c.addEventListener('message', () => c.close());
  relay.last.outbox.push({ seq: 1, type: 'text', data: 'one' }, { seq: 2, type: 'text', data: 'two' });
  relay.last.nextSeq = 3;
  relay.push(relay.last.id, 'text', 'three');
  await closed;
  assert.deepEqual(messages, ['one']);
}));

test('poll: create\'s fqdn is ignored unless followFqdn is set', () => withRelay({ fqdn: '127.0.0.1:1' }, async (relay) => {
  const { c, messages } = recorded(relay.url, POLL);
  await until(() => c.readyState === c.OPEN);
  c.send('stays on the given host');
  await until(() => messages.length === 1);
  c.close();
  const follower = recorded(relay.url, { ...POLL, followFqdn: true, maxRetryTime: 300 });
  await follower.closed; // port 1 refuses: the polls at the fqdn fail until the client gives up
  assert.equal(follower.c.url, 'http://127.0.0.1:1/poll');
  assert.equal(follower.events.at(-1).code, 1006);
  assert.equal(relay.sessions.size, 2);
  assert.equal(relay.log.filter((e) => e.path.startsWith(`/poll/j/${relay.last.id}`)).length, 0);
}));
