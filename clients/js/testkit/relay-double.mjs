// A test double of the SocketDock relay's public port for the client's tests: the long-poll
// transport of CONTRACT section 8 (create / s / j / c, seq and ack, held polls, the close
// record) with a loopback backend (every message echoed), a minimal RFC 6455 echo server at
// /ws, and fault injection. node:http and node:crypto only; loopback only.

import http from 'node:http';
import crypto from 'node:crypto';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function json(res, status, obj, extra = {}) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function validUtf8(buf) {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(buf);
    return true;
  } catch {
    return false;
  }
}

/**
 * startRelayDouble starts the double on 127.0.0.1 and an ephemeral port.
 * options:
 *   ws: 'accept' (default) | 'reject400' | 'reject404' | 'hang' (never answers the upgrade)
 *   echo: true (default): every accepted message is echoed back as an outbound message
 *   maxMessageSize: bytes (default 4 MiB), 413 beyond
 *   maxPollTtl: ms (default 25000)
 *   createStatus: answer create with this status and ok:false
 *   fqdn: the create answer's fqdn (default: the request's Host)
 *   allowedOrigins: '*' or a list: CORS as section 8 says (Origin echoed, Vary, preflight)
 *   static: {'/path': {type, body}}: files served as they are (a test page and the module)
 * The returned object exposes the sessions, a request log, fault queues, and push / closeSession
 * / kill to act as the backend.
 */
export async function startRelayDouble(options = {}) {
  const opts = { ws: 'accept', echo: true, maxMessageSize: 4 << 20, maxPollTtl: 25000, ...options };
  const sessions = new Map();
  const log = []; // {method, path, query, contentType}
  // Consumed in order: send faults one per send request, poll faults one per poll answer that
  // carries messages (not heartbeats).
  const faults = { poll: [], send: [] };
  const sockets = new Set();
  const wsConns = new Set();

  function session(id) {
    const s = sessions.get(id);
    return s && !s.ended ? s : null;
  }

  function push(s, type, data) {
    const m = { seq: s.nextSeq++, type, data };
    s.outbox.push(m);
    s.all.push(m);
    if (s.held) answer(s);
  }

  // answer answers the held poll of s with what waits (or the given list).
  function answer(s, messages) {
    const held = s.held;
    s.held = null;
    clearTimeout(held.timer);
    let msgs = messages ?? [...s.outbox];
    const fault = (messages === undefined && faults.poll.shift()) || {};
    if (fault.replayFrom !== undefined) {
      const replay = s.all.filter((m) => m.seq >= fault.replayFrom && !msgs.includes(m));
      msgs = [...replay, ...msgs].sort((a, b) => a.seq - b.seq);
    }
    if (messages === undefined && s.closeRecord) {
      msgs.push(s.closeRecord);
      s.ended = true; // a later request gets 403
    }
    for (const m of msgs) if (m.seq > s.sentUpTo) s.sentUpTo = m.seq;
    const body = JSON.stringify({ ok: true, messages: msgs });
    const res = held.res;
    s.answers.push(msgs);
    if (fault.cut === 'headers' || fault.cut === 'body') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      if (fault.cut === 'body') res.write(body.slice(0, Math.floor(body.length / 2)));
      else res.flushHeaders();
      setTimeout(() => res.socket && res.socket.destroy(), 20);
      return;
    }
    json(res, 200, { ok: true, messages: msgs });
  }

  function ready(s) {
    return s.outbox.length > 0 || s.closeRecord !== null;
  }

  async function handle(req, res) {
    const u = new URL(req.url, 'http://double');
    const entry = { method: req.method, path: u.pathname, query: Object.fromEntries(u.searchParams), contentType: req.headers['content-type'] || '', origin: req.headers.origin };
    log.push(entry);
    const origin = req.headers.origin;
    if (origin && (opts.allowedOrigins === '*' || opts.allowedOrigins?.includes(origin))) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
      if (req.method === 'OPTIONS') {
        res.writeHead(204, {
          'Access-Control-Allow-Methods': 'GET, POST',
          'Access-Control-Allow-Headers': 'Content-Type',
          'Access-Control-Max-Age': '600',
        });
        return res.end();
      }
    }
    if (opts.static && Object.hasOwn(opts.static, u.pathname)) {
      const { type, body } = opts.static[u.pathname];
      res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      return res.end(body);
    }
    const m = u.pathname.match(/^\/poll\/(create|s|j|c)(?:\/([0-9a-f]{32}))?$/);
    if (!m) return json(res, 404, { ok: false, error: 'not found' });
    const [, route, id] = m;

    if (route === 'create') {
      if (req.method !== 'GET' && req.method !== 'POST') return json(res, 405, { ok: false, error: 'method' });
      const body = req.method === 'POST' ? await readBody(req) : Buffer.alloc(0);
      const params = new URLSearchParams(u.search);
      if (/^application\/x-www-form-urlencoded/.test(entry.contentType)) {
        for (const [k, v] of new URLSearchParams(body.toString())) params.set(k, v);
      }
      if (opts.createStatus) return json(res, opts.createStatus, { ok: false, error: 'refused by the double' });
      const sid = crypto.randomBytes(16).toString('hex');
      sessions.set(sid, {
        id: sid, params: Object.fromEntries(params), outbox: [], all: [], nextSeq: 1, sentUpTo: 0,
        closeRecord: null, ended: false, closedByClient: false, held: null, inbox: [], answers: [], acks: [],
      });
      return json(res, 200, { ok: true, socket: sid, fqdn: opts.fqdn ?? req.headers.host });
    }

    const s = session(id);
    if (route === 's') {
      const body = await readBody(req);
      if (!s) return json(res, 403, { ok: false, error: 'unknown or closed session' });
      const fault = faults.send.shift();
      if (fault?.status) {
        return json(res, fault.status, { ok: false, error: 'fault' }, fault.retryAfter !== undefined ? { 'Retry-After': String(fault.retryAfter) } : {});
      }
      if (fault?.destroy === 'before') {
        req.socket.destroy();
        return;
      }
      let msg;
      if (/^application\/x-www-form-urlencoded/.test(entry.contentType) || req.method === 'GET') {
        const p = req.method === 'GET' ? u.searchParams : new URLSearchParams(body.toString());
        if (!p.has('d')) return json(res, 400, { ok: false, error: 'missing d' });
        const t = p.get('t') ?? 't';
        if (t === 'b') msg = { type: 'binary', data: Buffer.from(p.get('d'), 'base64') };
        else if (t === 't') msg = { type: 'text', data: Buffer.from(p.get('d')) };
        else return json(res, 400, { ok: false, error: 'bad t' });
      } else if (/^text\//.test(entry.contentType)) {
        if (!validUtf8(body)) return json(res, 400, { ok: false, error: 'text not UTF-8' });
        msg = { type: 'text', data: body };
      } else {
        msg = { type: 'binary', data: body };
      }
      if (msg.data.length > opts.maxMessageSize) return json(res, 413, { ok: false, error: 'too big' });
      s.inbox.push(msg);
      if (opts.echo) push(s, msg.type, msg.type === 'text' ? msg.data.toString('utf8') : msg.data.toString('base64'));
      if (fault?.destroy === 'after') {
        req.socket.destroy(); // accepted, but the answer is lost
        return;
      }
      return json(res, 201, { ok: true });
    }

    if (route === 'j') {
      if (req.method !== 'GET') return json(res, 405, { ok: false, error: 'method' });
      if (!s) return json(res, 403, { ok: false, error: 'unknown or closed session' });
      let ttl = opts.maxPollTtl;
      if (u.searchParams.has('ttl')) {
        ttl = Number(u.searchParams.get('ttl'));
        if (!Number.isInteger(ttl) || ttl < 0) return json(res, 400, { ok: false, error: 'bad ttl' });
        ttl = Math.min(ttl, opts.maxPollTtl);
      }
      if (u.searchParams.has('ack')) {
        const ack = Number(u.searchParams.get('ack'));
        if (!Number.isInteger(ack) || ack < 0) return json(res, 400, { ok: false, error: 'bad ack' });
        s.acks.push(ack);
        s.outbox = s.outbox.filter((x) => x.seq > ack);
      } else {
        s.acks.push(null);
        s.outbox = s.outbox.filter((x) => x.seq > s.sentUpTo);
      }
      if (s.held) answer(s, []); // one held poll per session
      s.held = { res, timer: null };
      const held = s.held;
      res.on('close', () => {
        if (s.held === held) {
          clearTimeout(held.timer);
          s.held = null;
        }
      });
      if (ready(s)) return answer(s);
      held.timer = setTimeout(() => answer(s, [{ type: 'heartbeat' }]), ttl);
      return;
    }

    if (route === 'c') {
      if (!s) return json(res, 403, { ok: false, error: 'unknown or closed session' });
      s.ended = true;
      s.closedByClient = true;
      if (s.held) {
        const held = s.held;
        s.held = null;
        clearTimeout(held.timer);
        json(held.res, 403, { ok: false, error: 'session closed' });
      }
      return json(res, 200, { ok: true });
    }
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      if (!res.headersSent) json(res, 500, { ok: false, error: String(e) });
    });
  });
  server.on('connection', (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
  });
  server.on('upgrade', (req, socket) => {
    log.push({ method: req.method, path: new URL(req.url, 'http://double').pathname, query: Object.fromEntries(new URL(req.url, 'http://double').searchParams), upgrade: true });
    sockets.add(socket);
    socket.on('error', () => {});
    if (!req.url.startsWith('/ws') || opts.ws === 'reject404') {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    if (opts.ws === 'reject400') {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    if (opts.ws === 'hang') return;
    const accept = crypto.createHash('sha1').update(req.headers['sec-websocket-key'] + WS_GUID).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    wsConns.add(socket);
    socket.on('close', () => wsConns.delete(socket));
    serveWs(socket);
  });

  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    sessions,
    log,
    faults,
    /** The only session, or the newest one. */
    get last() { return [...sessions.values()].at(-1); },
    push(sid, type, data) { push(sessions.get(sid), type, type === 'binary' ? Buffer.from(data).toString('base64') : data); },
    closeSession(sid, code, reason) {
      const s = sessions.get(sid);
      s.closeRecord = { type: 'close', code, reason };
      if (s.held) answer(s);
    },
    /** Ends a session without a close record (a later request gets 403). */
    kill(sid) {
      const s = sessions.get(sid);
      s.ended = true;
      if (s.held) {
        const held = s.held;
        s.held = null;
        clearTimeout(held.timer);
        json(held.res, 403, { ok: false, error: 'session gone' });
      }
    },
    async stop() {
      for (const s of sessions.values()) if (s.held) clearTimeout(s.held.timer);
      for (const sock of sockets) sock.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function wsFrame(op, payload) {
  const len = payload.length;
  let head;
  if (len < 126) head = Buffer.from([0x80 | op, len]);
  else if (len < 65536) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | op;
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | op;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([head, payload]);
}

// serveWs echoes text and binary messages; a text message "close:<code>:<reason>" makes the
// server close with that code instead.
function serveWs(socket) {
  let buf = Buffer.alloc(0);
  let parts = [];
  let msgOp = 0;
  socket.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const fin = (buf[0] & 0x80) !== 0;
      const op = buf[0] & 0x0f;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      if (buf.length < off + 4 + len) return;
      const mask = buf.subarray(off, off + 4);
      const payload = Buffer.from(buf.subarray(off + 4, off + 4 + len));
      for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
      buf = buf.subarray(off + 4 + len);
      if (op === 0x8) {
        socket.end(wsFrame(0x8, payload));
        return;
      }
      if (op === 0x9) {
        socket.write(wsFrame(0xa, payload));
        continue;
      }
      if (op === 0xa) continue;
      if (op !== 0) msgOp = op;
      parts.push(payload);
      if (!fin) continue;
      const msg = Buffer.concat(parts);
      parts = [];
      const text = msgOp === 1 ? msg.toString('utf8') : null;
      const cm = text && text.match(/^close:(\d+):(.*)$/);
      if (cm) {
        const p = Buffer.alloc(2);
        p.writeUInt16BE(Number(cm[1]));
        socket.write(wsFrame(0x8, Buffer.concat([p, Buffer.from(cm[2])])));
        continue;
      }
      socket.write(wsFrame(msgOp, msg));
    }
  });
}
