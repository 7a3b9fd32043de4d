/**
 * Each package ecosystem's own version ordering, as OSV ranges are evaluated in it. Every
 * comparator returns <0, 0 or >0 and never throws: a version it cannot parse still gets a
 * stable place (compared as text), so one odd version cannot stop a scan.
 */
export type VersionOrder = (a: string, b: string) => number;

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';
const isLetter = (c: string | undefined): boolean => c !== undefined && /[A-Za-z]/.test(c);

function compareNumbers(a: string, b: string): number {
  const x = a.replace(/^0+/, '');
  const y = b.replace(/^0+/, '');
  if (x.length !== y.length) return x.length - y.length;
  return x < y ? -1 : x > y ? 1 : 0;
}

// --- dpkg (deb-version(7)) -------------------------------------------------------------------

/** dpkg's character order: `~` before everything (even the end), letters before other marks. */
function dpkgOrder(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c === '~') return -1;
  if (isDigit(c)) return 0;
  if (isLetter(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

function dpkgCompareParts(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let first = 0;
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const x = dpkgOrder(a[i]);
      const y = dpkgOrder(b[j]);
      if (x !== y) return x - y;
      i++;
      j++;
    }
    while (a[i] === '0') i++;
    while (b[j] === '0') j++;
    while (isDigit(a[i]) && isDigit(b[j])) {
      if (first === 0) first = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(a[i])) return 1;
    if (isDigit(b[j])) return -1;
    if (first !== 0) return first;
  }
  return 0;
}

function splitDpkg(version: string): [number, string, string] {
  const colon = version.indexOf(':');
  const epoch = colon > 0 && /^\d+$/.test(version.slice(0, colon)) ? Number(version.slice(0, colon)) : 0;
  const rest = colon > 0 ? version.slice(colon + 1) : version;
  const dash = rest.lastIndexOf('-');
  return dash > 0 ? [epoch, rest.slice(0, dash), rest.slice(dash + 1)] : [epoch, rest, ''];
}

export const compareDpkg: VersionOrder = (a, b) => {
  const [ea, ua, ra] = splitDpkg(a.trim());
  const [eb, ub, rb] = splitDpkg(b.trim());
  if (ea !== eb) return ea - eb;
  return dpkgCompareParts(ua, ub) || dpkgCompareParts(ra, rb);
};

// --- rpm (rpmvercmp) -------------------------------------------------------------------------

export function rpmvercmp(a: string, b: string): number {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  for (;;) {
    while (i < a.length && !/[A-Za-z0-9~^]/.test(a[i]!)) i++;
    while (j < b.length && !/[A-Za-z0-9~^]/.test(b[j]!)) j++;
    // `~` sorts before anything, even the end; `^` after the end but before anything else.
    if (a[i] === '~' || b[j] === '~') {
      if (a[i] !== '~') return 1;
      if (b[j] !== '~') return -1;
      i++;
      j++;
      continue;
    }
    if (a[i] === '^' || b[j] === '^') {
      if (i >= a.length) return -1;
      if (j >= b.length) return 1;
      if (a[i] !== '^') return 1;
      if (b[j] !== '^') return -1;
      i++;
      j++;
      continue;
    }
    if (i >= a.length || j >= b.length) break;
    const numeric = isDigit(a[i]);
    const take = (s: string, k: number): string => {
      let end = k;
      while (end < s.length && (numeric ? isDigit(s[end]) : isLetter(s[end]))) end++;
      return s.slice(k, end);
    };
    const x = take(a, i);
    const y = take(b, j);
    i += x.length;
    j += y.length;
    if (y.length === 0) return numeric ? 1 : -1;
    const c = numeric ? compareNumbers(x, y) : x < y ? -1 : x > y ? 1 : 0;
    if (c !== 0) return c < 0 ? -1 : 1;
  }
  if (i >= a.length && j >= b.length) return 0;
  return i >= a.length ? -1 : 1;
}

/** `[epoch:]version[-release]`, as OSV writes RPM versions. */
export const compareRpm: VersionOrder = (a, b) => {
  const [ea, va, ra] = splitDpkg(a.trim());
  const [eb, vb, rb] = splitDpkg(b.trim());
  if (ea !== eb) return ea - eb;
  return rpmvercmp(va, vb) || (ra && rb ? rpmvercmp(ra, rb) : 0);
};

// --- apk (apk-tools version.c) ---------------------------------------------------------------

const APK_SUFFIXES: Record<string, number> = { alpha: -4, beta: -3, pre: -2, rc: -1, cvs: 1, svn: 2, git: 3, hg: 4, p: 5 };

interface ApkVersion {
  numbers: string[];
  letter: string;
  suffixes: Array<[number, string]>;
  revision: number;
}

function parseApk(version: string): ApkVersion | undefined {
  const m = /^(\d+(?:\.\d+)*)([a-z]?)((?:_[a-z]+\d*)*)(?:-r(\d+))?$/.exec(version.trim());
  if (!m) return undefined;
  const suffixes: Array<[number, string]> = [];
  for (const s of m[3]!.split('_').slice(1)) {
    const sm = /^([a-z]+)(\d*)$/.exec(s)!;
    suffixes.push([APK_SUFFIXES[sm[1]!] ?? 0, sm[2] || '0']);
  }
  return { numbers: m[1]!.split('.'), letter: m[2]!, suffixes, revision: Number(m[4] ?? 0) };
}

export const compareApk: VersionOrder = (a, b) => {
  const x = parseApk(a);
  const y = parseApk(b);
  if (!x || !y) return compareDpkg(a, b);
  for (let k = 0; k < Math.max(x.numbers.length, y.numbers.length); k++) {
    const p = x.numbers[k];
    const q = y.numbers[k];
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    const c = compareNumbers(p, q);
    if (c !== 0) return c;
  }
  if (x.letter !== y.letter) return x.letter < y.letter ? -1 : 1;
  for (let k = 0; k < Math.max(x.suffixes.length, y.suffixes.length); k++) {
    // No suffix sits between the pre-release ones (alpha..rc) and the post-release ones (p..).
    const [ka, na] = x.suffixes[k] ?? [0, '0'];
    const [kb, nb] = y.suffixes[k] ?? [0, '0'];
    if (ka !== kb) return ka - kb;
    const c = compareNumbers(na, nb);
    if (c !== 0) return c;
  }
  return x.revision - y.revision;
};

// --- SemVer (npm, Go) ------------------------------------------------------------------------

export const compareSemver: VersionOrder = (a, b) => {
  const parse = (v: string) => {
    const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/.exec(v.trim());
    return m ? { core: [m[1]!, m[2] ?? '0', m[3] ?? '0'], pre: m[4]?.split('.') ?? [] } : undefined;
  };
  const x = parse(a);
  const y = parse(b);
  if (!x || !y) return a < b ? -1 : a > b ? 1 : 0;
  for (let k = 0; k < 3; k++) {
    const c = compareNumbers(x.core[k]!, y.core[k]!);
    if (c !== 0) return c;
  }
  // A pre-release sorts before its release.
  if (x.pre.length === 0 || y.pre.length === 0) return y.pre.length - x.pre.length;
  for (let k = 0; k < Math.max(x.pre.length, y.pre.length); k++) {
    const p = x.pre[k];
    const q = y.pre[k];
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn) {
      const c = compareNumbers(p, q);
      if (c !== 0) return c;
    } else if (pn !== qn) {
      return pn ? -1 : 1;
    } else if (p !== q) {
      return p < q ? -1 : 1;
    }
  }
  return 0;
};

// --- PEP 440 (PyPI) --------------------------------------------------------------------------

const PEP440 =
  /^v?(?:(\d+)!)?(\d+(?:\.\d+)*)(?:[-_.]?(a|b|c|rc|alpha|beta|pre|preview)[-_.]?(\d*))?(?:-(\d+)|[-_.]?(post|rev|r)[-_.]?(\d*))?(?:[-_.]?(dev)[-_.]?(\d*))?(?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?$/i;

/** A sort key: [epoch, release..., pre, post, dev] with PEP 440's rules for absent parts. */
function pep440Key(version: string): number[][] | undefined {
  const m = PEP440.exec(version.trim().toLowerCase());
  if (!m) return undefined;
  const release = m[2]!.split('.').map(Number);
  while (release.length > 1 && release[release.length - 1] === 0) release.pop();
  const preKind = m[3] ? ({ a: 0, alpha: 0, b: 1, beta: 1, c: 2, rc: 2, pre: 2, preview: 2 } as Record<string, number>)[m[3]]! : undefined;
  const post = m[5] !== undefined ? Number(m[5]) : m[6] ? Number(m[7] || 0) : undefined;
  const dev = m[8] ? Number(m[9] || 0) : undefined;
  // A dev release of a final sorts before its pre-releases; no pre-release sorts after them all.
  const pre = preKind !== undefined ? [preKind, Number(m[4] || 0)] : dev !== undefined && post === undefined ? [-1, 0] : [Infinity, 0];
  return [[Number(m[1] ?? 0)], release, pre, [post === undefined ? -1 : post], [dev === undefined ? Infinity : dev]];
}

export const comparePep440: VersionOrder = (a, b) => {
  const x = pep440Key(a);
  const y = pep440Key(b);
  if (!x || !y) return a < b ? -1 : a > b ? 1 : 0;
  for (let k = 0; k < x.length; k++) {
    const p = x[k]!;
    const q = y[k]!;
    for (let n = 0; n < Math.max(p.length, q.length); n++) {
      const c = (p[n] ?? 0) - (q[n] ?? 0);
      if (c !== 0 && !Number.isNaN(c)) return c < 0 ? -1 : 1;
      if (Number.isNaN(c) && p[n] !== q[n]) return p[n] === Infinity ? 1 : -1;
    }
  }
  return 0;
};

// --- Maven (ComparableVersion) ---------------------------------------------------------------

const MAVEN_QUALIFIERS = ['alpha', 'beta', 'milestone', 'rc', 'snapshot', '', 'sp'];
const MAVEN_ALIASES: Record<string, string> = { a: 'alpha', b: 'beta', m: 'milestone', cr: 'rc', ga: '', final: '', release: '' };

type MavenItem = { kind: 'number'; value: string } | { kind: 'string'; value: string };

function mavenItems(version: string): MavenItem[] {
  const items: MavenItem[] = [];
  for (const part of version.toLowerCase().split(/[.-]/)) {
    for (const token of part.match(/\d+|[^\d]+/g) ?? ['']) {
      if (/^\d+$/.test(token)) items.push({ kind: 'number', value: token.replace(/^0+(?=\d)/, '') });
      else items.push({ kind: 'string', value: MAVEN_ALIASES[token] ?? token });
    }
  }
  // Trailing zeros and release qualifiers mean nothing: 1.0.0 = 1 = 1-ga.
  while (items.length > 1) {
    const last = items[items.length - 1]!;
    if ((last.kind === 'number' && last.value === '0') || (last.kind === 'string' && last.value === '')) items.pop();
    else break;
  }
  return items;
}

function mavenQualifierRank(value: string): [number, string] {
  const known = MAVEN_QUALIFIERS.indexOf(value);
  return known >= 0 ? [known, ''] : [MAVEN_QUALIFIERS.length, value];
}

function compareMavenItem(x: MavenItem | undefined, y: MavenItem | undefined): number {
  if (x === undefined && y === undefined) return 0;
  if (x === undefined) return -compareMavenItem(y, undefined);
  if (y === undefined) {
    // Against nothing: a number is more (1.1 > 1), a qualifier ranks against the release ('').
    if (x.kind === 'number') return x.value === '0' ? 0 : 1;
    const [r] = mavenQualifierRank(x.value);
    return r - MAVEN_QUALIFIERS.indexOf('');
  }
  if (x.kind === 'number' && y.kind === 'number') return compareNumbers(x.value, y.value);
  if (x.kind === 'number') return 1;
  if (y.kind === 'number') return -1;
  const [rx, tx] = mavenQualifierRank(x.value);
  const [ry, ty] = mavenQualifierRank(y.value);
  if (rx !== ry) return rx - ry;
  return tx < ty ? -1 : tx > ty ? 1 : 0;
}

export const compareMaven: VersionOrder = (a, b) => {
  const x = mavenItems(a);
  const y = mavenItems(b);
  for (let k = 0; k < Math.max(x.length, y.length); k++) {
    const c = compareMavenItem(x[k], y[k]);
    if (c !== 0) return c < 0 ? -1 : 1;
  }
  return 0;
};

/** The ordering for an OSV ecosystem name (`Debian:12`, `npm`, `Alpine:v3.18`, …). */
export function versionOrderFor(ecosystem: string): VersionOrder {
  const base = ecosystem.split(':')[0]!;
  switch (base) {
    case 'Debian':
    case 'Ubuntu':
      return compareDpkg;
    case 'Alpine':
      return compareApk;
    case 'Red Hat':
    case 'Rocky Linux':
    case 'AlmaLinux':
    case 'openSUSE':
    case 'SUSE':
    case 'Mageia':
      return compareRpm;
    case 'PyPI':
      return comparePep440;
    case 'Maven':
      return compareMaven;
    default:
      return compareSemver;
  }
}
