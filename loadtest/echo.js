// Echo through SocketDock's loopback backend: many sockets per VU, closed
// loop, every reply compared with what was sent.
//   k6 run -e WS_URL=ws://127.0.0.1:8765/ws loadtest/echo.js
import { VUS, DURATION, RTT_P99_MS, CONNECT_P95_MS } from './lib/config.js';
import { echoSockets } from './lib/echo.js';

export const options = {
  scenarios: {
    echo: { executor: 'constant-vus', vus: VUS, duration: DURATION, gracefulStop: '10s' },
  },
  thresholds: {
    sd_rtt: [`p(99)<${RTT_P99_MS}`],
    ws_connecting: [`p(95)<${CONNECT_P95_MS}`],
    sd_mismatches: ['count==0'],
    sd_ws_errors: ['count==0'],
    sd_messages: ['count>0'],
  },
};

export default function () {
  echoSockets();
}
