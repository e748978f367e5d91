// SocketDock browser client: a WebSocket-shaped object that talks to a SocketDock relay over a
// WebSocket when it can and over the relay's long-poll transport (CONTRACT section 8) when it
// cannot. No dependencies; runs in browsers and in Node 20+ (global fetch, EventTarget).

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

const DEFAULTS = Object.freeze({
  transports: ['ws', 'poll'],
  wsTimeout: 5000, // ms a WebSocket may take to open before the client falls back to poll
  token: undefined, // added as ?token= to the ws URL and to /poll/create
  target: undefined, // poll only: create's `target` (CONTRACT section 9)
  pollTtl: 25000, // ms the relay may hold a poll (it clamps to --poll-max-ttl)
  pollGrace: 10000, // ms beyond pollTtl before a silent poll counts as lost
  sendTimeout: 30000, // ms for one create, send or close request
  retryDelay: 250, // first backoff step, ms; doubles per failure
  maxRetryDelay: 10000, // backoff cap, ms
  maxRetryTime: 60000, // ms of unbroken poll/send failure before the client gives up
  followFqdn: false, // poll and send at create's `fqdn` instead of the given host
  credentials: 'same-origin', // fetch credentials mode for the poll requests
  fetch: undefined, // fetch implementation (default: globalThis.fetch)
  WebSocket: undefined, // WebSocket constructor (default: globalThis.WebSocket; null: none)
});

// relayUrls derives the WebSocket URL and the poll base from the relay URL a user gives:
// http(s)://host[:port][/prefix] or ws(s)://host[:port][/prefix][/ws], optionally with a query.
// The query (plus `token`) goes on both the ws URL and the create URL, so a backend reading
// meta.path sees the same query on both transports.
export function relayUrls(url, { token, target } = {}) {
  let u;
  try {
    u = new URL(url, globalThis.location?.href);
  } catch {
    throw new DOMException(`SocketDockClient: invalid URL ${url}`, 'SyntaxError');
  }
  const secure = { 'https:': true, 'wss:': true, 'http:': false, 'ws:': false }[u.protocol];
  if (secure === undefined) {
    throw new DOMException(`SocketDockClient: unsupported scheme ${u.protocol}`, 'SyntaxError');
  }
  const prefix = u.pathname.replace(/\/+$/, '').replace(/\/(ws|poll)$/, '');
  const query = new URLSearchParams(u.search);
  if (token != null) query.set('token', String(token));
  const wsQuery = query.toString();
  if (target != null) query.set('target', String(target));
  const createQuery = query.toString();
  const httpOrigin = `${secure ? 'https' : 'http'}://${u.host}`;
  return {
    ws: `${secure ? 'wss' : 'ws'}://${u.host}${prefix}/ws${wsQuery ? '?' + wsQuery : ''}`,
    poll: `${httpOrigin}${prefix}/poll`,
    create: `${httpOrigin}${prefix}/poll/create${createQuery ? '?' + createQuery : ''}`,
    scheme: secure ? 'https' : 'http',
    prefix,
  };
}

function makeEvent(type, props) {
  let ev;
  if (type === 'message' && typeof MessageEvent === 'function') {
    ev = new MessageEvent('message', { data: props.data });
    return ev;
  }
  if (type === 'close' && typeof CloseEvent === 'function') {
    return new CloseEvent('close', props);
  }
  ev = new Event(type);
  for (const [k, v] of Object.entries(props || {})) {
    Object.defineProperty(ev, k, { value: v, enumerable: true });
  }
  return ev;
}

function base64ToArrayBuffer(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

function utf8Length(s) {
  return new TextEncoder().encode(s).length;
}

// retryAfterMs reads a Retry-After header (seconds or an HTTP date); null when absent or bad.
function retryAfterMs(headers) {
  const v = headers?.get('retry-after');
  if (!v) return null;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : Math.max(0, t - Date.now());
}

export class SocketDockClient extends EventTarget {
  #opts;
  #urls;
  #state = CONNECTING;
  #transport = null;
  #fallbackReason = null;
  #ws = null;
  #wsAttempt = null; // {abort()} while a WebSocket attempt is pending
  #session = null;
  #pollBase = null;
  #lastSeq = 0; // highest seq delivered; sent as ack on every poll
  #queue = []; // poll-mode sends waiting: {body, type, size}
  #queuedBytes = 0;
  #sending = false;
  #drainWaiters = [];
  #sessionGoneOnSend = false;
  #pollAbort = null; // the AbortController of the poll in flight
  #pollKicked = false;
  #aborts = new Set(); // every AbortController of a request in flight
  #sleeps = new Set(); // every pending backoff: {timer, wake()}
  #finished = false;

  constructor(url, options = {}) {
    super();
    this.#opts = { ...DEFAULTS };
    for (const [k, v] of Object.entries(options)) if (v !== undefined) this.#opts[k] = v; // undefined: the default
    this.#urls = relayUrls(url, this.#opts);
    const bad = this.#opts.transports.filter((t) => t !== 'ws' && t !== 'poll');
    if (bad.length || this.#opts.transports.length === 0) {
      throw new DOMException(`SocketDockClient: bad transports ${JSON.stringify(this.#opts.transports)}`, 'SyntaxError');
    }
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
    this.onerror = null;
    for (const type of ['open', 'message', 'close', 'error']) {
      this.addEventListener(type, (ev) => {
        const h = this['on' + type];
        if (typeof h === 'function') h.call(this, ev);
      });
    }
    queueMicrotask(() => this.#connect());
  }

  get readyState() { return this.#state; }
  /** "ws" or "poll" once open; null before. */
  get transport() { return this.#transport; }
  /** Why the WebSocket attempt was given up (null when it was not tried or it opened). */
  get fallbackReason() { return this.#fallbackReason; }
  get url() { return this.#transport === 'poll' ? this.#pollBase : this.#urls.ws; }
  get binaryType() { return 'arraybuffer'; }
  get protocol() { return this.#ws ? this.#ws.protocol : ''; }
  get extensions() { return this.#ws ? this.#ws.extensions : ''; }
  /** Bytes accepted by send() and not yet taken by the relay. */
  get bufferedAmount() { return this.#ws ? this.#ws.bufferedAmount : this.#queuedBytes; }

  send(data) {
    if (this.#state === CONNECTING) {
      throw new DOMException('SocketDockClient: send() while CONNECTING', 'InvalidStateError');
    }
    if (this.#state !== OPEN) return; // like WebSocket: dropped once closing
    if (this.#transport === 'ws') {
      this.#ws.send(data);
      return;
    }
    let item;
    if (typeof data === 'string') {
      const bytes = new TextEncoder().encode(data);
      item = { body: bytes, type: 'text/plain;charset=utf-8', size: bytes.length };
    } else if (data instanceof ArrayBuffer) {
      item = { body: new Uint8Array(data.slice(0)), type: 'application/octet-stream', size: data.byteLength };
    } else if (ArrayBuffer.isView(data)) {
      const copy = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
      item = { body: copy, type: 'application/octet-stream', size: copy.length };
    } else if (typeof Blob === 'function' && data instanceof Blob) {
      item = { body: data, type: 'application/octet-stream', size: data.size };
    } else {
      const s = String(data);
      const bytes = new TextEncoder().encode(s);
      item = { body: bytes, type: 'text/plain;charset=utf-8', size: bytes.length };
    }
    this.#queue.push(item);
    this.#queuedBytes += item.size;
    this.#sendLoop();
  }

  close(code, reason) {
    if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) {
      throw new DOMException(`SocketDockClient: close code ${code} not allowed`, 'InvalidAccessError');
    }
    if (reason !== undefined && utf8Length(String(reason)) > 123) {
      throw new DOMException('SocketDockClient: close reason over 123 bytes', 'SyntaxError');
    }
    if (this.#state === CLOSING || this.#state === CLOSED) return;
    if (this.#state === CONNECTING) {
      // Like WebSocket: closing before open fails the connection.
      this.#finish(1006, 'closed before open', false, true);
      return;
    }
    this.#state = CLOSING;
    if (this.#transport === 'ws') {
      this.#ws.close(code, reason);
      return;
    }
    this.#closePoll(code, reason);
  }

  // ---- connecting ----

  async #connect() {
    for (const t of this.#opts.transports) {
      if (this.#finished) return;
      if (t === 'ws') {
        const failure = await this.#tryWs();
        if (this.#finished) return;
        if (failure === null) return;
        this.#fallbackReason = failure;
      } else {
        const failure = await this.#tryPoll();
        if (this.#finished) return;
        if (failure === null) return;
        this.#finish(1006, failure, false, true);
        return;
      }
    }
    this.#finish(1006, this.#fallbackReason || 'no transport', false, true);
  }

  // #tryWs resolves null once a WebSocket is open, or a string saying why not.
  #tryWs() {
    const WS = this.#opts.WebSocket === undefined ? globalThis.WebSocket : this.#opts.WebSocket;
    if (typeof WS !== 'function') return Promise.resolve('WebSocket unavailable');
    let ws;
    try {
      ws = new WS(this.#urls.ws);
    } catch (e) {
      return Promise.resolve(`WebSocket constructor threw: ${e && e.message}`);
    }
    ws.binaryType = 'arraybuffer';
    return new Promise((resolve) => {
      const done = (failure) => {
        clearTimeout(timer);
        this.#wsAttempt = null;
        if (failure !== null) {
          ws.onopen = ws.onclose = ws.onerror = ws.onmessage = null;
          try { ws.close(); } catch { /* already closed */ }
        }
        resolve(failure);
      };
      const timer = setTimeout(() => done(`WebSocket did not open within ${this.#opts.wsTimeout} ms`), this.#opts.wsTimeout);
      this.#wsAttempt = { abort: () => done('aborted') };
      // An error before open always means the attempt failed; do not wait for the close
      // event (Node 20's WebSocket never sends it after a refused upgrade).
      ws.onerror = () => done('WebSocket failed before open');
      ws.onclose = (ev) => done(`WebSocket closed before open (code ${ev.code})`);
      ws.onopen = () => {
        clearTimeout(timer);
        this.#wsAttempt = null;
        this.#ws = ws;
        this.#transport = 'ws';
        this.#state = OPEN;
        ws.onmessage = (ev) => {
          if (this.#state === OPEN) this.#emit('message', { data: ev.data });
        };
        ws.onerror = () => this.#emit('error', {});
        ws.onclose = (ev) => this.#finish(ev.code, ev.reason, ev.wasClean, false);
        this.#emit('open', {});
        resolve(null);
      };
    });
  }

  // #tryPoll resolves null once a poll session is open, or a string saying why not.
  async #tryPoll() {
    let r;
    try {
      r = await this.#request(this.#urls.create, { method: 'POST' }, this.#opts.sendTimeout);
    } catch (e) {
      return `poll create failed: ${e && e.message}`;
    }
    let j = null;
    try { j = JSON.parse(r.body); } catch { /* reported below */ }
    if (r.status !== 200 || !j || j.ok !== true || typeof j.socket !== 'string') {
      const why = (j && j.error) || r.body.slice(0, 200);
      return `poll create refused: HTTP ${r.status}${why ? ': ' + why : ''}`;
    }
    this.#session = j.socket;
    this.#pollBase = this.#urls.poll;
    if (this.#opts.followFqdn && typeof j.fqdn === 'string' && j.fqdn) {
      this.#pollBase = `${this.#urls.scheme}://${j.fqdn}${this.#urls.prefix}/poll`;
    }
    this.#transport = 'poll';
    this.#state = OPEN;
    this.#emit('open', {});
    this.#pollLoop();
    return null;
  }

  // ---- poll mode ----

  async #pollLoop() {
    let failures = 0;
    let failingSince = 0;
    while (this.#state === OPEN) {
      const ttl = Math.max(0, Math.floor(this.#opts.pollTtl));
      const url = `${this.#pollBase}/j/${this.#session}?ttl=${ttl}&ack=${this.#lastSeq}`;
      const checkingGone = this.#sessionGoneOnSend;
      let r;
      let failure = null;
      let wait = null;
      try {
        r = await this.#request(url, { method: 'GET', cache: 'no-store' }, ttl + this.#opts.pollGrace, (ac) => { this.#pollAbort = ac; });
      } catch (e) {
        failure = `poll failed: ${e && e.message}`;
      } finally {
        this.#pollAbort = null;
      }
      if (this.#state !== OPEN) return;
      if (this.#pollKicked) {
        // Aborted on purpose after a send got 403: re-poll at once to learn how it ended.
        this.#pollKicked = false;
        if (failure !== null) continue;
      }
      let answer = null;
      if (failure === null) {
        if (r.status === 403) {
          this.#finish(1006, 'poll session gone (HTTP 403)', false, false);
          return;
        }
        if (r.status === 200) {
          try { answer = JSON.parse(r.body); } catch { /* a proxy page or a cut body */ }
          if (!answer || answer.ok !== true || !Array.isArray(answer.messages)) {
            answer = null;
            failure = 'poll answer not understood';
          }
        } else if (r.status === 429 || r.status >= 500) {
          failure = `poll failed: HTTP ${r.status}`;
          wait = retryAfterMs(r.headers);
        } else {
          this.#finish(1006, `poll refused: HTTP ${r.status}`, false, true);
          return;
        }
      }
      if (failure !== null) {
        const now = Date.now();
        if (!failingSince) failingSince = now;
        if (now - failingSince >= this.#opts.maxRetryTime) {
          this.#finish(1006, `${failure}; gave up after ${now - failingSince} ms`, false, true);
          return;
        }
        await this.#sleep(wait ?? this.#backoff(failures++));
        continue;
      }
      failures = 0;
      failingSince = 0;
      for (const m of answer.messages) {
        if (this.#state !== OPEN) return; // closed from a handler
        if (!m || typeof m !== 'object') continue;
        if (m.type === 'close') {
          this.#finish(typeof m.code === 'number' ? m.code : 1005, typeof m.reason === 'string' ? m.reason : '', true, false);
          return;
        }
        if (typeof m.seq !== 'number') continue; // heartbeat, or a record this client does not know
        if (m.seq <= this.#lastSeq) continue; // redelivered: already handed to onmessage
        this.#lastSeq = m.seq;
        let data;
        if (m.type === 'text') data = String(m.data);
        else if (m.type === 'binary') {
          try {
            data = base64ToArrayBuffer(m.data);
          } catch {
            this.#finish(1007, `bad base64 in message ${m.seq}`, false, true);
            return;
          }
        } else continue;
        this.#emit('message', { data });
      }
      if (checkingGone && this.#state === OPEN) {
        this.#finish(1006, 'send refused: session gone (HTTP 403)', false, false);
        return;
      }
    }
  }

  async #sendLoop() {
    if (this.#sending) return;
    this.#sending = true;
    let failures = 0;
    let failingSince = 0;
    let refusedSince = 0;
    while (this.#queue.length && (this.#state === OPEN || this.#state === CLOSING) && !this.#sessionGoneOnSend) {
      const item = this.#queue[0];
      let r = null;
      let failure = null;
      try {
        r = await this.#request(`${this.#pollBase}/s/${this.#session}`,
          { method: 'POST', headers: { 'Content-Type': item.type }, body: item.body }, this.#opts.sendTimeout);
      } catch (e) {
        failure = `send failed: ${e && e.message}`;
      }
      if (this.#finished) break;
      const now = Date.now();
      if (failure !== null) {
        // The relay may have taken the message before the answer was lost: retrying can
        // deliver it twice (section 8 has no inbound dedupe). Not retrying would lose it.
        refusedSince = 0;
        if (!failingSince) failingSince = now;
        if (now - failingSince >= this.#opts.maxRetryTime) {
          this.#finish(1006, `${failure}; gave up after ${now - failingSince} ms`, false, true);
          break;
        }
        await this.#sleep(this.#backoff(failures++));
        continue;
      }
      if (r.status >= 200 && r.status < 300) {
        this.#queue.shift();
        this.#queuedBytes -= item.size;
        failures = 0;
        failingSince = 0;
        refusedSince = 0;
        continue;
      }
      if (r.status === 503 || r.status === 429) {
        // Backpressure: the relay refused it, so a retry cannot duplicate it.
        failingSince = 0;
        if (!refusedSince) refusedSince = now;
        if (now - refusedSince >= this.#opts.maxRetryTime) {
          this.#finish(1013, `send refused (HTTP ${r.status}) for ${now - refusedSince} ms`, false, true);
          break;
        }
        await this.#sleep(retryAfterMs(r.headers) ?? this.#backoff(failures++));
        continue;
      }
      if (r.status === 403) {
        // The session ended; the poll loop learns how (close record, or 403 → 1006).
        this.#sessionGoneOnSend = true;
        this.#kickPoll();
        break;
      }
      if (r.status === 413) {
        this.#finish(1009, 'message too big (HTTP 413)', false, true);
        break;
      }
      this.#finish(1006, `send refused: HTTP ${r.status}`, false, true);
      break;
    }
    this.#sending = false;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }

  #drained() {
    if (!this.#sending) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  #kickPoll() {
    if (this.#pollAbort) {
      this.#pollKicked = true;
      this.#pollAbort.abort(new Error('re-poll'));
    } else {
      for (const s of this.#sleeps) s.wake();
    }
  }

  // #closePoll sends what send() already accepted, then ends the session (POST /poll/c).
  async #closePoll(code, reason) {
    if (this.#pollAbort) this.#pollAbort.abort(new Error('closing'));
    await this.#drained();
    if (this.#finished) return;
    let ok = false;
    for (let attempt = 0; attempt < 3 && !ok; attempt++) {
      try {
        const r = await this.#request(`${this.#pollBase}/c/${this.#session}`, { method: 'POST' }, this.#opts.sendTimeout);
        if (this.#finished) return;
        if (r.status === 200) ok = true;
        else break;
      } catch {
        if (this.#finished) return;
        await this.#sleep(this.#backoff(attempt));
      }
    }
    if (ok) this.#finish(code ?? 1005, reason ?? '', true, false);
    else this.#finish(1006, 'poll close not confirmed', false, false);
  }

  // ---- plumbing ----

  // #request runs one fetch and reads its whole body under one timeout; it throws on network
  // errors, a cut body, the timeout, and when the client finishes.
  async #request(url, init, timeoutMs, onController) {
    const fetchFn = this.#opts.fetch || globalThis.fetch;
    if (typeof fetchFn !== 'function') throw new Error('fetch unavailable');
    const ac = new AbortController();
    this.#aborts.add(ac);
    if (onController) onController(ac);
    const timer = setTimeout(() => ac.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    try {
      const res = await fetchFn(url, { ...init, signal: ac.signal, credentials: this.#opts.credentials });
      const body = await res.text();
      return { status: res.status, headers: res.headers, body };
    } catch (e) {
      throw ac.signal.aborted && ac.signal.reason instanceof Error ? ac.signal.reason : e;
    } finally {
      clearTimeout(timer);
      this.#aborts.delete(ac);
    }
  }

  #backoff(failures) {
    const d = Math.min(this.#opts.maxRetryDelay, this.#opts.retryDelay * 2 ** Math.min(failures, 30));
    return d / 2 + Math.random() * (d / 2);
  }

  #sleep(ms) {
    if (this.#finished) return Promise.resolve();
    return new Promise((resolve) => {
      const s = {
        wake: () => {
          clearTimeout(s.timer);
          this.#sleeps.delete(s);
          resolve();
        },
      };
      s.timer = setTimeout(s.wake, ms);
      this.#sleeps.add(s);
    });
  }

  #emit(type, props) {
    this.dispatchEvent(makeEvent(type, props));
  }

  // #finish ends the client once: stops every request and timer, then fires error (when
  // asked) and close.
  #finish(code, reason, wasClean, withError) {
    if (this.#finished) return;
    this.#finished = true;
    this.#state = CLOSED;
    if (this.#wsAttempt) this.#wsAttempt.abort();
    for (const ac of this.#aborts) ac.abort(new Error('client closed'));
    this.#aborts.clear();
    for (const s of [...this.#sleeps]) s.wake();
    this.#queue = [];
    this.#queuedBytes = 0;
    if (this.#ws) {
      const ws = this.#ws;
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      if (ws.readyState === CONNECTING || ws.readyState === OPEN) {
        try { ws.close(); } catch { /* already closing */ }
      }
    }
    if (withError) this.#emit('error', { message: reason });
    this.#emit('close', { code, reason, wasClean });
  }
}

for (const [name, value] of Object.entries({ CONNECTING, OPEN, CLOSING, CLOSED })) {
  Object.defineProperty(SocketDockClient, name, { value, enumerable: true });
  Object.defineProperty(SocketDockClient.prototype, name, { value, enumerable: true });
}

export default SocketDockClient;
