// The module in a real browser against the relay double: a page on one origin loads
// socketdock-client.mjs and talks to relays on other origins (so the poll requests are
// cross-origin, with CORS and the preflight of binary sends). Opt-in, as it needs Chromium:
//   SOCKETDOCK_CHROMIUM=/usr/bin/chromium node --test test/browser.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRelayDouble } from '../testkit/relay-double.mjs';

const chromium = process.env.SOCKETDOCK_CHROMIUM;
const gate = chromium ? {} : { skip: 'set SOCKETDOCK_CHROMIUM to a Chromium binary to run' };

const PAGE = `<!doctype html><meta charset="utf-8"><title>socketdock client</title>
<script type="module">
import { SocketDockClient } from './socketdock-client.mjs';
const q = new URLSearchParams(location.search);
function scenario(url, options) {
  return new Promise((resolve) => {
    const c = new SocketDockClient(url, { ...options, retryDelay: 20 });
    const got = [];
    c.onopen = () => {
      c.send('héllo');
      c.send(new Uint8Array([0, 1, 255]));
      c.send(new Blob([new Uint8Array([9, 8])]));
    };
    c.onmessage = (ev) => {
      got.push(typeof ev.data === 'string' ? ev.data : Array.from(new Uint8Array(ev.data)));
      if (got.length === 3) c.close(1000, 'done');
    };
    c.onclose = (ev) => resolve({ transport: c.transport, fallbackReason: c.fallbackReason, got, code: ev.code, wasClean: ev.wasClean });
  });
}
const results = {
  ws: await scenario(q.get('relay'), {}),
  poll: await scenario(q.get('relay'), { transports: ['poll'] }),
  fallback: await scenario(q.get('refusing'), {}),
};
await fetch('/result', { method: 'POST', body: JSON.stringify(results) });
</script>`;

test('browser: the module in Chromium, over ws, forced poll (cross-origin) and fallback', gate, async () => {
  const relay = await startRelayDouble({ allowedOrigins: '*' });
  const refusing = await startRelayDouble({ allowedOrigins: '*', ws: 'reject400' });
  const moduleText = await readFile(new URL('../socketdock-client.mjs', import.meta.url));
  let gotResult;
  const result = new Promise((resolve) => { gotResult = resolve; });
  const page = http.createServer((req, res) => {
    if (req.url.startsWith('/index.html')) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      return res.end(PAGE);
    }
    if (req.url === '/socketdock-client.mjs') {
      res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' });
      return res.end(moduleText);
    }
    if (req.url === '/result' && req.method === 'POST') {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        res.end('ok');
        gotResult(JSON.parse(Buffer.concat(chunks).toString()));
      });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise((r) => page.listen(0, '127.0.0.1', r));
  const profile = await mkdtemp(join(tmpdir(), 'sdc-chromium-'));
  const url = `http://127.0.0.1:${page.address().port}/index.html?relay=${encodeURIComponent(relay.url)}&refusing=${encodeURIComponent(refusing.url)}`;
  const browser = spawn(chromium, ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run',
    `--user-data-dir=${profile}`, url], { stdio: 'ignore', detached: true });
  try {
    let timer;
    const timeout = new Promise((_, rej) => { timer = setTimeout(() => rej(new Error('no result from the page in 60 s')), 60000); });
    const r = await Promise.race([result, timeout]).finally(() => clearTimeout(timer));
    const want = ['héllo', [0, 1, 255], [9, 8]];
    assert.deepEqual(r.ws, { transport: 'ws', fallbackReason: null, got: want, code: 1000, wasClean: true });
    assert.deepEqual(r.poll, { transport: 'poll', fallbackReason: null, got: want, code: 1000, wasClean: true });
    assert.equal(r.fallback.transport, 'poll');
    assert.match(r.fallback.fallbackReason, /before open/);
    assert.deepEqual(r.fallback.got, want);
    // Binary sends from another origin were preflighted and allowed.
    assert.ok(relay.log.some((e) => e.method === 'OPTIONS' && e.path.startsWith('/poll/s/')));
  } finally {
    // Chromium and its helpers run in their own process group (detached): end that group.
    const exited = new Promise((r) => browser.once('exit', r));
    try { process.kill(-browser.pid, 'SIGTERM'); } catch { /* already gone */ }
    let killTimer;
    await Promise.race([exited, new Promise((r) => { killTimer = setTimeout(r, 5000); })]);
    clearTimeout(killTimer);
    try { process.kill(-browser.pid, 'SIGKILL'); } catch { /* already gone */ }
    const closed = new Promise((r) => page.close(r));
    page.closeAllConnections();
    await closed;
    await relay.stop();
    await refusing.stop();
    await rm(profile, { recursive: true, force: true });
  }
});
