// Node's ws as a WebSocket upstream for SocketDock's --backend ws e2e tests (Go drives it).
// It listens on a free loopback port and prints "PORT <n>"; each close it receives from the
// relay is printed as "CLOSE <code> <reason>". The path picks the behaviour:
//   /echo          echo every message with its type ("snot" is answered "badger")
//   /headers...    first send {"url","headers"} as text, then echo
//   /close/<code>  close with <code> "node says" after the first message
//   /flood/<n>     after the first message send n binary messages of 16 KiB (4-byte seq first), then echo
//   /invalid       send a text frame that is not UTF-8
// A client offering "v2.chat" gets it as subprotocol.
import { WebSocketServer } from 'ws';

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  handleProtocols: (protocols) => (protocols.has('v2.chat') ? 'v2.chat' : false),
});

function echo(ws) {
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.toString() === 'snot') data = Buffer.from('badger');
    ws.send(data, { binary: isBinary });
  });
}

wss.on('connection', (ws, req) => {
  ws.on('close', (code, reason) => console.log(`CLOSE ${code} ${reason.toString()}`));
  const path = req.url.split('?')[0];
  if (path.startsWith('/headers')) {
    ws.send(JSON.stringify({ url: req.url, headers: req.headers }));
    echo(ws);
  } else if (path.startsWith('/close/')) {
    ws.once('message', () => ws.close(Number(path.slice(7)), 'node says'));
  } else if (path.startsWith('/flood/')) {
    const n = Number(path.slice(7));
    ws.once('message', () => {
      for (let i = 0; i < n; i++) {
        const b = Buffer.alloc(16 << 10);
        b.writeUInt32BE(i, 0);
        ws.send(b, { binary: true });
      }
      echo(ws);
    });
  } else if (path === '/invalid') {
    ws._socket.write(Buffer.from([0x81, 0x02, 0xff, 0xfe]));
    ws.on('message', () => {});
  } else {
    echo(ws);
  }
});

wss.on('listening', () => console.log(`PORT ${wss.address().port}`));
process.on('SIGTERM', () => process.exit(0));
