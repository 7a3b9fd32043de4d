/**
 * The part of Go's text/template that docker users write in `--format`: actions with pipelines,
 * fields (`.A.B`), variables (`$x := …`, `$`), `if`/`else if`/`else`, `range` (with `$i, $v :=`
 * and `else`), `with`, comments, trim markers (`{{-`, `-}}`), parenthesised pipelines, Go's
 * builtins (and, or, not, len, index, slice, print, printf, println, eq, ne, lt, le, gt, ge) and
 * docker's (json, join, split, upper, lower, title, truncate, pad). Values print as Go's `%v`
 * does: `[a b]` for a slice, `map[k:v]` for a map, `<no value>` for a missing key.
 *
 * Lexed and parsed once into a tree, then evaluated per value, as text/template does.
 */

export class TemplateError extends Error {
  constructor(message: string) {
    super(`template: ${message}`);
    this.name = 'TemplateError';
  }
}

// ---- lexing -------------------------------------------------------------------------------

type Token =
  | { kind: 'text'; value: string }
  | { kind: 'open' }
  | { kind: 'close' }
  | { kind: 'field'; path: string[] } // .A.B (and "." alone as an empty path)
  | { kind: 'variable'; name: string; path: string[] } // $x.A
  | { kind: 'identifier'; name: string }
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: number }
  | { kind: 'bool'; value: boolean }
  | { kind: 'nil' }
  | { kind: 'char'; value: '(' | ')' | '|' | ',' | '=' | ':=' }
  | { kind: 'chain'; path: string[] }; // .A after a closing parenthesis

function lex(source: string): Token[] {
  const tokens: Token[] = [];
  let pos = 0;
  let trimNextText = false;
  while (pos < source.length) {
    const open = source.indexOf('{{', pos);
    let text = open < 0 ? source.slice(pos) : source.slice(pos, open);
    if (trimNextText) text = text.replace(/^\s+/, '');
    trimNextText = false;
    let start = open;
    if (open >= 0 && source.startsWith('{{- ', open)) text = text.replace(/\s+$/, '');
    if (text) tokens.push({ kind: 'text', value: text });
    if (open < 0) break;
    start = source.startsWith('{{- ', open) ? open + 4 : open + 2;
    // A comment is dropped whole.
    const afterOpen = source.slice(start).trimStart();
    if (afterOpen.startsWith('/*')) {
      const end = source.indexOf('*/', start);
      if (end < 0) throw new TemplateError('unclosed comment');
      const close = source.indexOf('}}', end);
      if (close < 0) throw new TemplateError('unclosed action');
      if (source.slice(end + 2, close).trim() === '-') trimNextText = true;
      pos = close + 2;
      continue;
    }
    tokens.push({ kind: 'open' });
    pos = start;
    for (;;) {
      while (pos < source.length && /\s/.test(source[pos]!)) pos++;
      if (pos >= source.length) throw new TemplateError('unclosed action');
      if (source.startsWith('-}}', pos) && /\s/.test(source[pos - 1] ?? '')) {
        trimNextText = true;
        pos += 3;
        break;
      }
      if (source.startsWith('}}', pos)) {
        pos += 2;
        break;
      }
      const c = source[pos]!;
      if (c === '"') {
        let end = pos + 1;
        while (end < source.length && source[end] !== '"') end += source[end] === '\\' ? 2 : 1;
        if (end >= source.length) throw new TemplateError('unterminated quoted string');
        tokens.push({ kind: 'string', value: JSON.parse(source.slice(pos, end + 1)) as string });
        pos = end + 1;
      } else if (c === '`') {
        const end = source.indexOf('`', pos + 1);
        if (end < 0) throw new TemplateError('unterminated raw quoted string');
        tokens.push({ kind: 'string', value: source.slice(pos + 1, end) });
        pos = end + 1;
      } else if (c === '.' || c === '$') {
        const m = /^(\$[A-Za-z0-9_]*)?((?:\.[A-Za-z0-9_]+)*)(\.?)/.exec(source.slice(pos))!;
        const path = m[2] ? m[2].slice(1).split('.') : [];
        const afterParen = tokens.at(-1)?.kind === 'char' && (tokens.at(-1) as { value: string }).value === ')';
        if (m[1]) tokens.push({ kind: 'variable', name: m[1], path });
        else if (afterParen && path.length > 0) tokens.push({ kind: 'chain', path });
        else tokens.push({ kind: 'field', path });
        pos += m[0].length;
      } else if (/[0-9-]/.test(c) && /^-?[0-9]/.test(source.slice(pos))) {
        const m = /^-?(0x[0-9a-fA-F]+|[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)/.exec(source.slice(pos))!;
        tokens.push({ kind: 'number', value: Number(m[0]) });
        pos += m[0].length;
      } else if (/[A-Za-z_]/.test(c)) {
        const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(source.slice(pos))!;
        const word = m[0];
        if (word === 'true' || word === 'false') tokens.push({ kind: 'bool', value: word === 'true' });
        else if (word === 'nil') tokens.push({ kind: 'nil' });
        else tokens.push({ kind: 'identifier', name: word });
        pos += word.length;
      } else if (source.startsWith(':=', pos)) {
        tokens.push({ kind: 'char', value: ':=' });
        pos += 2;
      } else if ('()|,='.includes(c)) {
        tokens.push({ kind: 'char', value: c as '(' | ')' | '|' | ',' | '=' });
        pos++;
      } else {
        throw new TemplateError(`unexpected "${c}" in action`);
      }
    }
    tokens.push({ kind: 'close' });
  }
  return tokens;
}

// ---- parsing ------------------------------------------------------------------------------

type Arg =
  | { kind: 'field'; path: string[] }
  | { kind: 'variable'; name: string; path: string[] }
  | { kind: 'function'; name: string }
  | { kind: 'literal'; value: unknown }
  | { kind: 'pipeline'; pipeline: Pipeline; path: string[] };

interface Command {
  args: Arg[];
}

interface Pipeline {
  declare: string[];
  assign: boolean;
  commands: Command[];
}

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pipeline: Pipeline }
  | ControlNode;

interface ControlNode {
  kind: 'if' | 'with' | 'range';
  pipeline: Pipeline;
  body: Node[];
  otherwise: Node[];
}

const KEYWORDS = new Set(['if', 'else', 'end', 'range', 'with', 'define', 'template', 'block', 'break', 'continue']);

class Parser {
  private pos = 0;
  constructor(private readonly tokens: Token[]) {}

  parse(): Node[] {
    const { nodes, stop } = this.list();
    if (stop) throw new TemplateError(`unexpected {{${stop}}}`);
    return nodes;
  }

  /** Nodes up to an `{{else…}}` or `{{end}}` (returned as `stop`) or the end of input. */
  private list(): { nodes: Node[]; stop?: 'else' | 'end' } {
    const nodes: Node[] = [];
    while (this.pos < this.tokens.length) {
      const token = this.tokens[this.pos++]!;
      if (token.kind === 'text') {
        nodes.push({ kind: 'text', text: token.value });
        continue;
      }
      if (token.kind !== 'open') throw new TemplateError('unexpected token outside an action');
      const head = this.tokens[this.pos];
      if (head?.kind === 'identifier' && KEYWORDS.has(head.name)) {
        this.pos++;
        switch (head.name) {
          case 'end':
            this.expect('close');
            return { nodes, stop: 'end' };
          case 'else':
            // `{{else}}` or `{{else if …}}`: the caller reads what follows.
            return { nodes, stop: 'else' };
          case 'if':
          case 'with':
          case 'range':
            nodes.push(this.control(head.name));
            continue;
          default:
            throw new TemplateError(`{{${head.name}}} is not supported`);
        }
      }
      const pipeline = this.pipeline();
      this.expect('close');
      nodes.push({ kind: 'action', pipeline });
    }
    return { nodes };
  }

  private control(kind: 'if' | 'with' | 'range'): ControlNode {
    const pipeline = this.pipeline();
    this.expect('close');
    const body = this.list();
    if (!body.stop) throw new TemplateError(`unexpected EOF: {{${kind}}} has no {{end}}`);
    let otherwise: Node[] = [];
    if (body.stop === 'else') {
      const next = this.tokens[this.pos];
      if (kind === 'if' && next?.kind === 'identifier' && next.name === 'if') {
        // `{{else if c}}…{{end}}` is an if inside the else branch, sharing the one {{end}}.
        this.pos++;
        otherwise = [this.control('if')];
      } else {
        this.expect('close');
        const rest = this.list();
        if (rest.stop !== 'end') throw new TemplateError(`{{${kind}}}: expected {{end}} after {{else}}`);
        otherwise = rest.nodes;
      }
    }
    return { kind, pipeline, body: body.nodes, otherwise };
  }

  private expect(kind: 'close'): void {
    const token = this.tokens[this.pos++];
    if (token?.kind !== kind) throw new TemplateError(`unexpected ${describeToken(token)} in action`);
  }

  private pipeline(): Pipeline {
    const declare: string[] = [];
    let assign = false;
    // `$x :=`, `$i, $v :=` and `$x =` before the commands.
    const save = this.pos;
    const names: string[] = [];
    while (this.tokens[this.pos]?.kind === 'variable') {
      const variable = this.tokens[this.pos] as { name: string; path: string[] };
      if (variable.path.length > 0) break;
      names.push(variable.name);
      this.pos++;
      const next = this.tokens[this.pos];
      if (next?.kind === 'char' && next.value === ',') {
        this.pos++;
        continue;
      }
      if (next?.kind === 'char' && (next.value === ':=' || next.value === '=')) {
        this.pos++;
        declare.push(...names);
        assign = next.value === '=';
      }
      break;
    }
    if (declare.length === 0) this.pos = save;
    const commands: Command[] = [];
    for (;;) {
      commands.push(this.command());
      const next = this.tokens[this.pos];
      if (next?.kind === 'char' && next.value === '|') {
        this.pos++;
        continue;
      }
      break;
    }
    return { declare, assign, commands };
  }

  private command(): Command {
    const args: Arg[] = [];
    for (;;) {
      const token = this.tokens[this.pos];
      if (!token || token.kind === 'close' || (token.kind === 'char' && (token.value === '|' || token.value === ')'))) break;
      this.pos++;
      switch (token.kind) {
        case 'field':
          args.push({ kind: 'field', path: token.path });
          break;
        case 'variable':
          args.push({ kind: 'variable', name: token.name, path: token.path });
          break;
        case 'identifier':
          if (KEYWORDS.has(token.name)) throw new TemplateError(`unexpected keyword ${token.name}`);
          args.push({ kind: 'function', name: token.name });
          break;
        case 'string':
        case 'number':
        case 'bool':
          args.push({ kind: 'literal', value: token.value });
          break;
        case 'nil':
          args.push({ kind: 'literal', value: null });
          break;
        case 'char': {
          if (token.value !== '(') throw new TemplateError(`unexpected "${token.value}" in command`);
          const pipeline = this.pipeline();
          const close = this.tokens[this.pos++];
          if (close?.kind !== 'char' || close.value !== ')') throw new TemplateError('unclosed left paren');
          const chain = this.tokens[this.pos];
          const path = chain?.kind === 'chain' ? (this.pos++, chain.path) : [];
          args.push({ kind: 'pipeline', pipeline, path });
          break;
        }
        default:
          throw new TemplateError(`unexpected ${describeToken(token)} in command`);
      }
    }
    if (args.length === 0) throw new TemplateError('missing value for command');
    return { args };
  }
}

function describeToken(token: Token | undefined): string {
  if (!token) return 'end of template';
  if (token.kind === 'close') return '"}}"';
  if (token.kind === 'char') return `"${token.value}"`;
  return token.kind;
}

// ---- values as Go prints them -------------------------------------------------------------

/** A value as Go's fmt `%v` prints it (JS objects read as maps, as our data are plain JSON). */
export function goString(value: unknown): string {
  if (value === undefined) return '<no value>';
  if (value === null) return '<nil>';
  if (Array.isArray(value)) return `[${value.map(goString).join(' ')}]`;
  if (typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .map((k) => `${k}:${goString((value as Record<string, unknown>)[k])}`);
    return `map[${entries.join(' ')}]`;
  }
  return String(value);
}

function isTrue(value: unknown): boolean {
  if (value === undefined || value === null || value === false || value === 0 || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value as object).length > 0;
  return true;
}

function field(value: unknown, path: string[]): unknown {
  let current = value;
  for (const key of path) {
    if (current === undefined || current === null) throw new TemplateError(`nil pointer evaluating .${path.join('.')}`);
    if (typeof current !== 'object' || Array.isArray(current)) throw new TemplateError(`can't evaluate field ${key} in type ${goType(current)}`);
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

function goType(value: unknown): string {
  if (Array.isArray(value)) return 'slice';
  if (typeof value === 'number') return Number.isInteger(value) ? 'int' : 'float64';
  return typeof value;
}

// ---- functions ----------------------------------------------------------------------------

function compare(name: string, a: unknown, b: unknown): number {
  if (typeof a !== typeof b || (typeof a !== 'number' && typeof a !== 'string')) {
    throw new TemplateError(`error calling ${name}: incompatible types for comparison`);
  }
  return a < (b as typeof a) ? -1 : a > (b as typeof a) ? 1 : 0;
}

/** printf's verbs: %s %v %d %q %x %f %t %%, with flags and widths. */
function sprintf(format: string, args: unknown[]): string {
  let next = 0;
  return format.replace(/%([-+ 0#]*)(\d*)(?:\.(\d+))?([svdqxXftT%])/g, (_m, flags: string, width: string, precision: string | undefined, verb: string) => {
    if (verb === '%') return '%';
    if (next >= args.length) return `%!${verb}(MISSING)`;
    const arg = args[next++];
    let text: string;
    switch (verb) {
      case 'd':
        text = typeof arg === 'number' ? String(Math.trunc(arg)) : `%!d(${goType(arg)}=${goString(arg)})`;
        break;
      case 'f':
        text = typeof arg === 'number' ? arg.toFixed(precision === undefined ? 6 : Number(precision)) : `%!f(${goType(arg)}=${goString(arg)})`;
        break;
      case 'q':
        text = JSON.stringify(typeof arg === 'string' ? arg : goString(arg));
        break;
      case 'x':
      case 'X':
        text = typeof arg === 'number' ? arg.toString(16) : Buffer.from(goString(arg)).toString('hex');
        if (verb === 'X') text = text.toUpperCase();
        break;
      case 'T':
        text = goType(arg);
        break;
      default:
        text = goString(arg);
        if (precision !== undefined && verb === 's') text = text.slice(0, Number(precision));
    }
    const w = Number(width || 0);
    if (text.length < w) text = flags.includes('-') ? text.padEnd(w) : text.padStart(w, flags.includes('0') && verb !== 's' ? '0' : ' ');
    return text;
  });
}

type TemplateFunction = (...args: unknown[]) => unknown;

const FUNCTIONS: Record<string, TemplateFunction> = {
  // Go's builtins
  not: (a) => !isTrue(a),
  len: (a) => {
    if (typeof a === 'string' || Array.isArray(a)) return a.length;
    if (a && typeof a === 'object') return Object.keys(a).length;
    throw new TemplateError(`error calling len: len of type ${goType(a)}`);
  },
  index: (target, ...keys) => {
    let value = target;
    for (const key of keys) {
      if (Array.isArray(value) || typeof value === 'string') {
        if (typeof key !== 'number' || key < 0 || key >= value.length) throw new TemplateError(`error calling index: index out of range: ${goString(key)}`);
        value = value[key];
      } else if (value && typeof value === 'object') {
        value = (value as Record<string, unknown>)[String(key)];
      } else {
        throw new TemplateError(`error calling index: can't index item of type ${goType(value)}`);
      }
    }
    return value;
  },
  slice: (target, ...bounds) => {
    if (typeof target !== 'string' && !Array.isArray(target)) throw new TemplateError(`error calling slice: can't slice item of type ${goType(target)}`);
    const [from, to] = bounds as Array<number | undefined>;
    return target.slice(from ?? 0, to ?? target.length);
  },
  print: (...args) => args.map((a, i) => (i > 0 && typeof a !== 'string' && typeof args[i - 1] !== 'string' ? ' ' : '') + goString(a)).join(''),
  println: (...args) => `${args.map(goString).join(' ')}\n`,
  printf: (format, ...args) => sprintf(String(format), args),
  eq: (a, ...others) => others.some((b) => (typeof a === 'object' || typeof b === 'object' ? false : a === b)),
  ne: (a, b) => compare('ne', a, b) !== 0,
  lt: (a, b) => compare('lt', a, b) < 0,
  le: (a, b) => compare('le', a, b) <= 0,
  gt: (a, b) => compare('gt', a, b) > 0,
  ge: (a, b) => compare('ge', a, b) >= 0,
  html: (a) => goString(a).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`),
  urlquery: (a) => encodeURIComponent(goString(a)),
  // docker's additions
  json: (a) => JSON.stringify(a === undefined ? null : a),
  join: (list, separator) => (Array.isArray(list) ? list.map(goString).join(String(separator)) : goString(list)),
  split: (text, separator) => String(text).split(String(separator)),
  upper: (a) => goString(a).toUpperCase(),
  lower: (a) => goString(a).toLowerCase(),
  title: (a) => goString(a).replace(/\b\w/g, (c) => c.toUpperCase()),
  truncate: (a, n) => [...goString(a)].slice(0, Number(n)).join(''),
  pad: (a, left, right) => `${' '.repeat(Number(left))}${goString(a)}${' '.repeat(Number(right))}`,
};

// ---- evaluation ---------------------------------------------------------------------------

interface Scope {
  variables: Map<string, unknown>;
  parent?: Scope;
}

function lookupVariable(scope: Scope, name: string): Scope | undefined {
  for (let s: Scope | undefined = scope; s; s = s.parent) if (s.variables.has(name)) return s;
  return undefined;
}

class Evaluator {
  out = '';

  run(nodes: Node[], dot: unknown, scope: Scope): void {
    for (const node of nodes) {
      switch (node.kind) {
        case 'text':
          this.out += node.text;
          break;
        case 'action': {
          const value = this.pipeline(node.pipeline, dot, scope);
          if (node.pipeline.declare.length === 0) this.out += goString(value);
          break;
        }
        case 'if': {
          const inner: Scope = { variables: new Map(), parent: scope };
          if (isTrue(this.pipeline(node.pipeline, dot, inner))) this.run(node.body, dot, inner);
          else this.run(node.otherwise, dot, inner);
          break;
        }
        case 'with': {
          const inner: Scope = { variables: new Map(), parent: scope };
          const value = this.pipeline(node.pipeline, dot, inner);
          if (isTrue(value)) this.run(node.body, value, inner);
          else this.run(node.otherwise, dot, inner);
          break;
        }
        case 'range':
          this.range(node, dot, scope);
          break;
      }
    }
  }

  private range(node: ControlNode, dot: unknown, scope: Scope): void {
    const { declare } = node.pipeline;
    const value = this.pipeline({ ...node.pipeline, declare: [] }, dot, scope);
    let items: Array<[unknown, unknown]>;
    if (value === undefined || value === null) items = [];
    else if (Array.isArray(value)) items = value.map((v, i) => [i, v]);
    else if (typeof value === 'object') items = Object.keys(value).sort().map((k) => [k, (value as Record<string, unknown>)[k]]);
    else if (typeof value === 'number' && Number.isInteger(value)) items = Array.from({ length: Math.max(0, value) }, (_v, i) => [i, i]);
    else throw new TemplateError(`range can't iterate over ${goString(value)}`);
    if (items.length === 0) {
      this.run(node.otherwise, dot, scope);
      return;
    }
    for (const [key, item] of items) {
      const inner: Scope = { variables: new Map(), parent: scope };
      if (declare.length === 1) inner.variables.set(declare[0]!, item);
      if (declare.length === 2) {
        inner.variables.set(declare[0]!, key);
        inner.variables.set(declare[1]!, item);
      }
      this.run(node.body, item, inner);
    }
  }

  private pipeline(pipeline: Pipeline, dot: unknown, scope: Scope): unknown {
    let value: unknown;
    let piped = false;
    for (const command of pipeline.commands) {
      value = this.command(command, dot, scope, piped ? { value } : undefined);
      piped = true;
    }
    for (const name of pipeline.declare) {
      if (pipeline.assign) {
        const owner = lookupVariable(scope, name);
        if (!owner) throw new TemplateError(`undefined variable: ${name}`);
        owner.variables.set(name, value);
      } else {
        scope.variables.set(name, value);
      }
    }
    return value;
  }

  private command(command: Command, dot: unknown, scope: Scope, piped: { value: unknown } | undefined): unknown {
    const [first, ...rest] = command.args;
    if (first!.kind === 'function') {
      const fn = FUNCTIONS[first!.name];
      if (!fn) throw new TemplateError(`function "${first!.name}" not defined`);
      const args = rest.map((a) => this.arg(a, dot, scope));
      if (piped) args.push(piped.value);
      if (first!.name === 'and' || first!.name === 'or') return this.logic(first!.name, args);
      return fn(...args);
    }
    if (rest.length > 0 || piped) throw new TemplateError(`can't give argument to non-function ${describeArg(first!)}`);
    return this.arg(first!, dot, scope);
  }

  private logic(name: 'and' | 'or', args: unknown[]): unknown {
    for (const a of args) if (isTrue(a) === (name === 'or')) return a;
    return args.at(-1);
  }

  private arg(arg: Arg, dot: unknown, scope: Scope): unknown {
    switch (arg.kind) {
      case 'field':
        return arg.path.length === 0 ? dot : field(dot, arg.path);
      case 'variable': {
        const owner = arg.name === '$' ? undefined : lookupVariable(scope, arg.name);
        if (arg.name !== '$' && !owner) throw new TemplateError(`undefined variable: ${arg.name}`);
        const value = arg.name === '$' ? lookupVariable(scope, '$')!.variables.get('$') : owner!.variables.get(arg.name);
        return field(value, arg.path);
      }
      case 'literal':
        return arg.value;
      case 'pipeline':
        return field(this.pipeline(arg.pipeline, dot, { variables: new Map(), parent: scope }), arg.path);
      case 'function': {
        const fn = FUNCTIONS[arg.name];
        if (!fn) throw new TemplateError(`function "${arg.name}" not defined`);
        return fn();
      }
    }
  }
}

function describeArg(arg: Arg): string {
  if (arg.kind === 'field') return `.${arg.path.join('.')}`;
  if (arg.kind === 'variable') return arg.name;
  return 'value';
}

// Functions that `and`/`or` short-circuit are evaluated in Evaluator.logic; listed for lookup.
FUNCTIONS.and = () => undefined;
FUNCTIONS.or = () => undefined;

/** A parsed template, ready to run on many values. */
export class GoTemplate {
  private readonly nodes: Node[];

  constructor(source: string) {
    this.nodes = new Parser(lex(source)).parse();
  }

  /** Runs the template with `data` as dot (and as `$`). */
  execute(data: unknown): string {
    const evaluator = new Evaluator();
    evaluator.run(this.nodes, data, { variables: new Map([['$', data]]) });
    return evaluator.out;
  }
}
