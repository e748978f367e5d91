// Connect and hold: each VU opens SOCKETS_PER_VU sockets, keeps them for
// HOLD_SECONDS (answering the relay's pings, which k6 does by itself), and
// checks that none was closed by the server before the client closed it.
//   k6 run -e WS_URL=ws://127.0.0.1:8765/ws -e SOCKETS_PER_VU=500 loadtest/hold.js
import { WebSocket } from 'k6/websockets';
import { setTimeout } from 'k6/timers';
import { Counter } from 'k6/metrics';
import { VUS, SOCKETS_PER_VU, HOLD_SECONDS, CONNECT_P95_MS, WS_URL } from './lib/config.js';

const opened = new Counter('sd_sockets_opened');
const dropped = new Counter('sd_sockets_dropped');
const wsErrors = new Counter('sd_ws_errors');

export const options = {
  scenarios: {
    hold: { executor: 'per-vu-iterations', vus: VUS, iterations: 1, maxDuration: `${HOLD_SECONDS + 60}s` },
  },
  thresholds: {
    ws_connecting: [`p(95)<${CONNECT_P95_MS}`],
    sd_sockets_opened: [`count==${VUS * SOCKETS_PER_VU}`],
    sd_sockets_dropped: ['count==0'],
    sd_ws_errors: ['count==0'],
  },
};

export default function () {
  for (let i = 0; i < SOCKETS_PER_VU; i++) {
    const ws = new WebSocket(WS_URL);
    let closing = false;
    ws.onopen = () => {
      opened.add(1);
      setTimeout(() => {
        closing = true;
        ws.close();
      }, HOLD_SECONDS * 1000);
    };
    ws.onclose = () => {
      if (!closing) dropped.add(1);
    };
    ws.onerror = () => wsErrors.add(1);
  }
}
