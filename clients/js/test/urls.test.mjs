// How the relay URL a user gives becomes the ws URL and the poll base.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relayUrls, SocketDockClient } from '../socketdock-client.mjs';

test('relayUrls: http and ws forms, with and without /ws, a prefix, a query and a token', () => {
  const cases = [
    ['http://h:8765', {}, 'ws://h:8765/ws', 'http://h:8765/poll', 'http://h:8765/poll/create'],
    ['http://h:8765/', {}, 'ws://h:8765/ws', 'http://h:8765/poll', 'http://h:8765/poll/create'],
    ['ws://h:8765/ws', {}, 'ws://h:8765/ws', 'http://h:8765/poll', 'http://h:8765/poll/create'],
    ['wss://h/ws/', {}, 'wss://h/ws', 'https://h/poll', 'https://h/poll/create'],
    ['https://h/relay', {}, 'wss://h/relay/ws', 'https://h/relay/poll', 'https://h/relay/poll/create'],
    ['https://h/relay/poll', {}, 'wss://h/relay/ws', 'https://h/relay/poll', 'https://h/relay/poll/create'],
    ['http://h/?x=1#frag', { token: 'a b' }, 'ws://h/ws?x=1&token=a+b', 'http://h/poll', 'http://h/poll/create?x=1&token=a+b'],
    ['http://h', { target: 'ws://up/' }, 'ws://h/ws', 'http://h/poll', 'http://h/poll/create?target=ws%3A%2F%2Fup%2F'],
  ];
  for (const [url, o, ws, poll, create] of cases) {
    const u = relayUrls(url, o);
    assert.deepEqual([u.ws, u.poll, u.create], [ws, poll, create], url);
  }
});

test('relayUrls: bad URLs and schemes throw SyntaxError, like WebSocket', () => {
  assert.throws(() => relayUrls('not a url'), { name: 'SyntaxError' });
  assert.throws(() => relayUrls('ftp://h/'), { name: 'SyntaxError' });
  assert.throws(() => new SocketDockClient('http://h', { transports: ['smoke'] }), { name: 'SyntaxError' });
});

test('constants on the class and on instances, as on WebSocket', () => {
  assert.deepEqual([SocketDockClient.CONNECTING, SocketDockClient.OPEN, SocketDockClient.CLOSING, SocketDockClient.CLOSED], [0, 1, 2, 3]);
  assert.equal(SocketDockClient.prototype.CLOSED, 3);
});
