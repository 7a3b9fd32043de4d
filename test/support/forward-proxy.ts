import { createServer, request, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';

/**
 * A forward proxy on loopback, as a company proxy is to a client: plain HTTP requests in
 * absolute form are forwarded, HTTPS goes through CONNECT tunnels. It alone knows where
 * `hosts` live (name → 127.0.0.1), so a client that reaches them went through it.
 */
export interface ForwardProxy {
  url: string;
  /** `GET http://host/path` and `CONNECT host:port`, in the order seen. */
  seen: string[];
  close(): Promise<void>;
}

export async function startForwardProxy(hosts: string[]): Promise<ForwardProxy> {
  const seen: string[] = [];
  const resolve = (host: string) => (hosts.includes(host) ? '127.0.0.1' : host);
  const server: Server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      res.writeHead(400).end('absolute URL required');
      return;
    }
    const upstream = request(
      { method: req.method, hostname: resolve(target.hostname), port: target.port || 80, path: target.pathname + target.search, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  server.on('connect', (req, socket, head) => {
    seen.push(`CONNECT ${req.url}`);
    const [host, port] = (req.url ?? '').split(':');
    const tunnel = connect(Number(port), resolve(host!), () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      tunnel.write(head);
      tunnel.pipe(socket);
      socket.pipe(tunnel);
    });
    const end = () => {
      socket.destroy();
      tunnel.destroy();
    };
    tunnel.on('error', end);
    socket.on('error', end);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
