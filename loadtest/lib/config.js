// Shared settings for the SocketDock k6 scripts. Every knob is an
// environment variable so run.sh (or a person) can change the profile
// without editing scripts.
export const WS_URL = __ENV.WS_URL || 'ws://127.0.0.1:8765/ws';
export const SOCKETS_PER_VU = parseInt(__ENV.SOCKETS_PER_VU || '20', 10);
export const VUS = parseInt(__ENV.VUS || '10', 10);
export const DURATION = __ENV.DURATION || '20s';
export const HOLD_SECONDS = parseFloat(__ENV.HOLD_SECONDS || '15');
export const MSG_SIZE = parseInt(__ENV.MSG_SIZE || '64', 10);
// Pause between messages on one socket (ms): 0 is a closed loop.
export const THINK_MS = parseInt(__ENV.THINK_MS || '0', 10);
export const RTT_P99_MS = parseFloat(__ENV.RTT_P99_MS || '50');
export const CONNECT_P95_MS = parseFloat(__ENV.CONNECT_P95_MS || '500');

// Only loopback targets: these scripts generate load.
const host = WS_URL.replace(/^wss?:\/\//, '').split(/[/:]/)[0];
if (!(host === 'localhost' || host.startsWith('127.') || host === '[::1]')) {
  throw new Error(`refusing non-loopback target ${WS_URL}`);
}

// payload builds a verifiable ASCII message: socket id, sequence, padding.
export function payload(sock, seq) {
  let head = `${__VU}.${sock}:${seq}:`;
  let s = head;
  while (s.length < MSG_SIZE) {
    s += String.fromCharCode(97 + ((s.length + seq) % 26));
  }
  return s.substring(0, Math.max(MSG_SIZE, head.length));
}
