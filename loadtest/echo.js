// Echo through SocketDock's loopback backend: many sockets per VU, closed
// loop, every reply compared with what was sent.
//   k6 run -e WS_URL=ws://127.0.0.1:8765/ws loadtest/echo.js
import { echoOptions, echoSockets } from './lib/echo.js';

export const options = echoOptions('echo');

export default function () {
  echoSockets();
}
