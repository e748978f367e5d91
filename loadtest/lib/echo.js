// Closed-loop echo over many sockets per VU: each socket sends one message,
// waits for the identical reply, records the round trip and sends the next.
import { WebSocket } from 'k6/websockets';
import { setTimeout } from 'k6/timers';
import { Trend, Counter } from 'k6/metrics';
import { SOCKETS_PER_VU, HOLD_SECONDS, THINK_MS, WS_URL, VUS, DURATION, RTT_P99_MS, CONNECT_P95_MS, payload } from './config.js';

export const rtt = new Trend('sd_rtt', true);
export const msgs = new Counter('sd_messages');
export const mismatches = new Counter('sd_mismatches');
export const wsErrors = new Counter('sd_ws_errors');
export const opened = new Counter('sd_sockets_opened');

// echoOptions is the k6 options of a closed-loop echo scenario with its thresholds.
export function echoOptions(scenario) {
  return {
    scenarios: {
      [scenario]: { executor: 'constant-vus', vus: VUS, duration: DURATION, gracefulStop: '10s' },
    },
    thresholds: {
      sd_rtt: [`p(99)<${RTT_P99_MS}`],
      ws_connecting: [`p(95)<${CONNECT_P95_MS}`],
      sd_mismatches: ['count==0'],
      sd_ws_errors: ['count==0'],
      sd_messages: ['count>0'],
    },
  };
}

export function echoSockets() {
  const deadline = Date.now() + HOLD_SECONDS * 1000;
  for (let i = 0; i < SOCKETS_PER_VU; i++) {
    const ws = new WebSocket(WS_URL);
    let seq = 0;
    let sent = '';
    let t0 = 0;
    const next = () => {
      if (Date.now() >= deadline) {
        ws.close();
        return;
      }
      sent = payload(i, seq++);
      t0 = Date.now();
      ws.send(sent);
    };
    ws.onopen = () => {
      opened.add(1);
      next();
    };
    ws.onmessage = (e) => {
      rtt.add(Date.now() - t0);
      if (e.data !== sent) {
        mismatches.add(1);
        ws.close();
        return;
      }
      msgs.add(1);
      if (THINK_MS > 0) {
        setTimeout(next, THINK_MS);
      } else {
        next();
      }
    };
    ws.onerror = () => wsErrors.add(1);
  }
}
