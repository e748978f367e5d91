// Helpers for the client's tests: a client whose events are recorded, and waiting for a state.

import { SocketDockClient } from '../socketdock-client.mjs';

export function recorded(url, options) {
  const c = new SocketDockClient(url, options);
  const events = [];
  const messages = [];
  c.onopen = () => events.push({ type: 'open', transport: c.transport });
  c.onmessage = (ev) => {
    events.push({ type: 'message' });
    messages.push(typeof ev.data === 'string' ? ev.data : Buffer.from(ev.data));
  };
  c.onerror = (ev) => events.push({ type: 'error', message: ev.message });
  c.onclose = (ev) => events.push({ type: 'close', code: ev.code, reason: ev.reason, wasClean: ev.wasClean });
  const closed = new Promise((resolve) => c.addEventListener('close', resolve));
  return { c, events, messages, closed };
}

// until resolves once fn() is truthy, polling every 5 ms; it rejects after timeoutMs.
export async function until(fn, timeoutMs = 5000, what = 'condition') {
  const start = Date.now();
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// activeTimers counts the timers alive in this process.
export function activeTimers() {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}
