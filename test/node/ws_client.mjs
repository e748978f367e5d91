// Node's ws (a peer we did not write) against the built relay: loopback echo, fragments,
// ping/pong, close codes, and the full HTTP backend path with a Node backend.
// Usage: node test/node/ws_client.mjs path/to/socketdock
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

const binary = process.argv[2] ?? 'bin/socketdock';
let passed = 0, failed = 0;

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

async function startRelay(args) {
  const port = await freePort();
  let control = await freePort();
  while (control === port) control = await freePort();
  const proc = spawn(binary, ['--bindport', String(port), '--control-bindport', String(control), '--log-level', 'ERROR', ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  for (let i = 0; i < 200; i++) {
    try { const r = await fetch(`http://127.0.0.1:${port}/healthz`); if (r.ok) break; } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 25));
  }
  return { proc, url: `ws://127.0.0.1:${port}/ws`, control: `http://127.0.0.1:${control}` };
}

function stop(relay) {
  return new Promise((resolve) => { relay.proc.once('exit', (code) => resolve(code)); relay.proc.kill('SIGTERM'); });
}

function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function next(ws) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no message within 5s')), 5000);
    ws.once('message', (data, isBinary) => { clearTimeout(t); resolve({ data, isBinary }); });
  });
}

function closed(ws) {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

async function test(name, fn) {
  try { await fn(); passed++; console.log(`ok   ${name}`); } catch (e) { failed++; console.log(`FAIL ${name}: ${e.stack}`); }
}

const loop = await startRelay([]);

await test('loopback echoes text and binary with the same opcode', async () => {
  const ws = await open(loop.url);
  ws.send('héllo ✓');
  let m = await next(ws);
  assert.equal(m.isBinary, false);
  assert.equal(m.data.toString(), 'héllo ✓');
  const bytes = Buffer.from([0, 255, 254, 1]);
  ws.send(bytes);
  m = await next(ws);
  assert.equal(m.isBinary, true);
  assert.deepEqual(Buffer.from(m.data), bytes);
  ws.close();
});

await test('fragmented message is reassembled', async () => {
  const ws = await open(loop.url);
  ws.send('frag', { fin: false });
  ws.send('men', { fin: false });
  ws.send('ted', { fin: true });
  const m = await next(ws);
  assert.equal(m.data.toString(), 'fragmented');
  ws.close();
});

await test('ping is answered with a pong carrying the payload', async () => {
  const ws = await open(loop.url);
  const pong = new Promise((resolve) => ws.once('pong', resolve));
  ws.ping('are-you-there');
  assert.equal((await pong).toString(), 'are-you-there');
  ws.close();
});

await test('close code and reason are echoed', async () => {
  const ws = await open(loop.url);
  const c = closed(ws);
  ws.close(4321, 'see you');
  const { code, reason } = await c;
  assert.equal(code, 4321);
  assert.equal(reason, 'see you');
});

await test('invalid UTF-8 in a text frame closes with 1007', async () => {
  const ws = await open(loop.url);
  const c = closed(ws);
  ws.send(Buffer.from([0xc3, 0x28]), { binary: false }); // ws sends a Buffer as text unchecked
  assert.equal((await c).code, 1007);
});

assert.equal(await stop(loop), 0, 'relay exits 0 on SIGTERM');

// The full HTTP path: relay → Node backend → callback → client.
const posts = [];
const backend = http.createServer((req, res) => {
  let body = '';
  req.on('data', (d) => { body += d; });
  req.on('end', async () => {
    const json = JSON.parse(body);
    posts.push({ path: req.url, json });
    res.end();
    if (req.url === '/message') {
      const type = json.meta.type === 'text' ? 'text/plain' : 'application/didcomm-envelope-enc';
      await fetch(json.meta.send, { method: 'POST', headers: { 'Content-Type': type }, body: 'echo:' + json.message });
    }
  });
});
await new Promise((r) => backend.listen(0, '127.0.0.1', r));
const b = `http://127.0.0.1:${backend.address().port}`;
const relay = await startRelay(['--backend', 'http', '--message-uri', `${b}/message`, '--connect-uri', `${b}/connect`, '--disconnect-uri', `${b}/disconnect`]);

await test('http backend: connect, message, callback and disconnect', async () => {
  const ws = await open(relay.url);
  ws.send('one');
  let m = await next(ws);
  assert.equal(m.isBinary, false);
  assert.equal(m.data.toString(), 'echo:one');
  ws.send(Buffer.from('two'));
  m = await next(ws);
  assert.equal(m.isBinary, true, 'application/didcomm-envelope-enc arrives as a binary frame');
  assert.equal(m.data.toString(), 'echo:two');
  const c = closed(ws);
  ws.close(1000);
  await c;
  for (let i = 0; i < 100 && !posts.some((p) => p.path === '/disconnect'); i++) await new Promise((r) => setTimeout(r, 20));
  const paths = posts.map((p) => p.path);
  assert.deepEqual(paths, ['/connect', '/message', '/message', '/disconnect']);
  const id = posts[0].json.meta.connection_id;
  assert.match(id, /^[0-9a-f]{32}$/);
  assert.equal(posts[1].json.meta.connection_id, id);
  assert.equal(posts[1].json.message, 'one');
  assert.equal(posts[1].json.meta.transport, 'ws');
  assert.equal(posts[2].json.meta.type, 'binary');
  assert.deepEqual(posts[3].json, { connection_id: id, transport: 'ws', code: 1000, reason: '' });
});

assert.equal(await stop(relay), 0, 'relay exits 0 on SIGTERM');
backend.close();
console.log(`node ws: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
