// The HTTP backend path: client → SocketDock → POST /message → reference
// backend → POST meta.send → SocketDock → client. Same closed loop as
// echo.js; run.sh starts SocketDock with --backend http and the reference
// backend (bench/cmd/refbackend) behind it.
//   k6 run -e WS_URL=ws://127.0.0.1:8765/ws loadtest/http_backend.js
import { echoOptions, echoSockets } from './lib/echo.js';

export const options = echoOptions('http_backend');

export default function () {
  echoSockets();
}
