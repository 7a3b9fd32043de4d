/**
 * The request-rate ceiling of any Node.js HTTP server on this machine: a bare `node:http` server
 * that answers every request with the manifest's bytes and the headers Wharf sends with them, and
 * does nothing else. Run as its own process: `node node-ceiling.js PORT PROCESSES FILE`. With
 * more than one process it hands connections round as Wharf's worker pool does (the parent accepts
 * them paused and sends each to the next child), so the two figures bound Wharf's by design:
 * whatever Wharf adds per request (routing, metadata, headers) comes on top of these.
 */
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';

const [port, processes, file] = [Number(process.argv[2]), Number(process.argv[3] ?? 1), process.argv[4] ?? ''];
const body = readFileSync(file);
const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;

function answer(): ReturnType<typeof createServer> {
  return createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    res.writeHead(200, [
      'Docker-Distribution-API-Version', 'registry/2.0',
      'Content-Type', 'application/vnd.oci.image.manifest.v1+json',
      'Docker-Content-Digest', digest,
      'ETag', `"${digest}"`,
      'Content-Length', String(body.length),
    ]);
    if (req.method === 'HEAD') res.end();
    else res.end(body);
  });
}

if (process.send && process.argv[5] === 'child') {
  const server = answer();
  process.on('message', (_message: unknown, socket: Socket | undefined) => {
    if (!socket) return;
    socket.setNoDelay(true);
    server.emit('connection', socket);
    socket.resume();
  });
  process.on('disconnect', () => process.exit(0));
  process.send('ready');
} else if (processes <= 1) {
  answer().listen(port, '127.0.0.1');
} else {
  const children = Array.from({ length: processes }, () => fork(process.argv[1]!, [String(port), String(processes), file, 'child']));
  await Promise.all(children.map((child) => new Promise((resolve) => child.once('message', resolve))));
  let next = 0;
  createNetServer({ pauseOnConnect: true }, (socket) => {
    children[next]!.send('connection', socket);
    next = (next + 1) % children.length;
  }).listen(port, '127.0.0.1');
  process.on('SIGTERM', () => {
    for (const child of children) child.kill();
    process.exit(0);
  });
}
