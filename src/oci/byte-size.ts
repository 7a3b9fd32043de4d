/**
 * Sizes as operators write them (`10GiB`, `500MB`, `1.5 GiB`, `1048576`) and as Wharf prints them.
 * Binary units (KiB, MiB, GiB, TiB) are powers of 1024, decimal ones (kB, MB, GB, TB) powers of
 * 1000, as the units say; a bare number is bytes.
 */
const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
  // Docker and Kubernetes spell binary units without the B: accept those too.
  k: 2 ** 10,
  ki: 2 ** 10,
  m: 2 ** 20,
  mi: 2 ** 20,
  g: 2 ** 30,
  gi: 2 ** 30,
  t: 2 ** 40,
  ti: 2 ** 40,
};

/** Bytes in a size such as `10GiB` or `2048`; undefined when it is not a size. */
export function parseByteSize(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isSafeInteger(text) && text >= 0 ? text : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!m) return undefined;
  const unit = UNITS[(m[2] ?? '').toLowerCase() || 'b'];
  if (unit === undefined) return undefined;
  const bytes = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** A size for people, in binary units with one decimal (`1.2 GiB`, `300.0 MiB`, `512 B`). */
export function formatByteSize(bytes: number): string {
  const steps = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  if (Math.abs(bytes) < 1024) return `${bytes} B`;
  let value = bytes / 1024;
  let i = 0;
  while (Math.abs(value) >= 1024 && i < steps.length - 1) {
    value /= 1024;
    i += 1;
  }
  return `${value.toFixed(1)} ${steps[i]}`;
}
