import type { Exchange } from '../exchange.js';
import { sendJson } from '../exchange.js';

/** One readiness check's verdict: `ok`, or what is wrong in a sentence. */
export interface CheckResult {
  ok: boolean;
  detail: string;
}

/** What /readyz asks the serving process (see server/health.ts): storage, metadata and free space. */
export interface HealthProbes {
  readiness(): Promise<Record<string, CheckResult>>;
}

/** `GET /healthz`: the process is alive and its event loop turns. Checks nothing else, on purpose. */
export async function healthz(ex: Exchange): Promise<void> {
  sendJson(ex, 200, { status: 'ok' }, { 'Cache-Control': 'no-store' });
}

/** `GET /readyz`: 200 when every check passes, 503 naming the failing ones otherwise. */
export async function readyz(ex: Exchange): Promise<void> {
  const checks = ex.health ? await ex.health.readiness() : {};
  const ready = Object.values(checks).every((check) => check.ok);
  const body = {
    status: ready ? 'ready' : 'not ready',
    checks: Object.fromEntries(Object.entries(checks).map(([name, check]) => [name, check.ok ? 'ok' : check.detail])),
  };
  sendJson(ex, ready ? 200 : 503, body, { 'Cache-Control': 'no-store' });
}
