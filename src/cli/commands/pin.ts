import type { Command } from 'commander';
import { readFileSync, writeFileSync } from 'node:fs';
import { isMap, isPair, isScalar, isSeq, parseAllDocuments, type Node } from 'yaml';
import { isClientError } from '../../client/index.js';
import { parseReference } from '../../oci/reference.js';
import { withContext, type CliContext } from '../context.js';

/** One `image:` value found in a YAML file, with where its text sits. */
interface ImageField {
  value: string;
  /** Offsets of the scalar's source text (quotes included). */
  start: number;
  end: number;
  line: number;
}

/** Every scalar under an `image` key, in docker-compose services and Kubernetes pod specs alike. */
export function findImageFields(text: string): ImageField[] {
  const fields: ImageField[] = [];
  const lineOf = (offset: number) => text.slice(0, offset).split('\n').length;
  const visit = (node: unknown) => {
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const key = isScalar(pair.key) ? pair.key.value : undefined;
        const value = pair.value as Node | null;
        if (key === 'image' && isScalar(value) && typeof value.value === 'string' && value.range) {
          fields.push({ value: value.value, start: value.range[0], end: value.range[1], line: lineOf(value.range[0]) });
        } else {
          visit(value);
        }
      }
    } else if (isSeq(node)) {
      for (const item of node.items) visit(item);
    }
  };
  for (const doc of parseAllDocuments(text)) {
    if ('errors' in doc && doc.errors.length > 0) throw new Error(`invalid YAML: ${doc.errors[0]!.message}`);
    visit(doc.contents);
  }
  return fields;
}

function isPinned(value: string): boolean {
  return value.includes('@');
}

/** Variables (`${TAG}`) are resolved at deploy time: not something we can pin. */
function isTemplated(value: string): boolean {
  return value.includes('$') || value.includes('{{');
}

interface PinOptions {
  check: boolean;
  /** Leave references that cannot be resolved (variables, unreachable registries) as they are. */
  skipUnresolvable: boolean;
}

interface FileOutcome {
  /** Lines naming each reference that fails the file; with any, the file is left unwritten. */
  problems: string[];
  changed: number;
}

/** Whether an error means "could not ask", as opposed to an answer that the reference is wrong. */
function isUnreachable(error: unknown): boolean {
  return isClientError(error, 'network') || isClientError(error, 'tls');
}

async function pinFile(context: CliContext, file: string, options: PinOptions): Promise<FileOutcome> {
  const text = readFileSync(file, 'utf8');
  const fields = findImageFields(text);
  const problems: string[] = [];
  const replacements: Array<{ start: number; end: number; text: string }> = [];
  const resolved = new Map<string, string>();
  const warn = (line: string) => process.stderr.write(`${line}\n`);
  /** A reference we could not resolve: a failure, or a warning when told to skip such. */
  const unresolvable = (where: string, reason: string) => {
    if (options.skipUnresolvable) warn(`${where} skipped: ${reason}`);
    else problems.push(`${where} ${reason} (--skip-unresolvable leaves it as it is)`);
  };
  for (const field of fields) {
    const where = `${file}:${field.line}: ${field.value}`;
    if (isTemplated(field.value)) {
      unresolvable(where, 'cannot be resolved: it holds a variable');
      continue;
    }
    let ref;
    try {
      ref = parseReference(field.value);
    } catch (error) {
      problems.push(`${where} is not an image reference: ${(error as Error).message}`);
      continue;
    }
    if (options.check) {
      if (!isPinned(field.value)) {
        problems.push(`${where} is not pinned to a digest`);
        continue;
      }
      // A pinned reference is checked too: its digest must still be there.
      try {
        const head = await context.client(ref.registry).headManifest(ref.repository, ref.digest!);
        if (!head) problems.push(`${where}: no manifest ${ref.digest} in ${ref.registry}/${ref.repository}`);
      } catch (error) {
        if (!isUnreachable(error)) throw error;
        unresolvable(where, `cannot be checked: ${(error as Error).message}`);
      }
      continue;
    }
    if (isPinned(field.value)) continue;
    let digest = resolved.get(field.value);
    if (!digest) {
      let head;
      try {
        head = await context.client(ref.registry).headManifest(ref.repository, ref.tag ?? 'latest');
      } catch (error) {
        if (!isUnreachable(error)) throw error;
        unresolvable(where, `cannot be resolved: ${(error as Error).message}`);
        continue;
      }
      if (!head) {
        problems.push(`${where}: manifest unknown`);
        continue;
      }
      digest = head.digest;
      resolved.set(field.value, digest);
    }
    const source = text.slice(field.start, field.end);
    const quote = source.startsWith('"') || source.startsWith("'") ? source[0]! : '';
    replacements.push({ start: field.start, end: field.end, text: `${quote}${field.value}@${digest}${quote}` });
    if (!context.options.quiet) process.stderr.write(`${file}:${field.line}: ${field.value} -> ${field.value}@${digest}\n`);
  }
  // All or nothing: a file with a reference that failed is not written at all.
  if (replacements.length > 0 && problems.length === 0) {
    let out = text;
    for (const r of replacements.sort((a, b) => b.start - a.start)) out = out.slice(0, r.start) + r.text + out.slice(r.end);
    writeFileSync(file, out);
  }
  return { problems, changed: problems.length === 0 ? replacements.length : 0 };
}

export function registerPin(program: Command): void {
  program
    .command('pin')
    .description('rewrite image references in docker-compose and Kubernetes YAML from tags to name:tag@digest')
    .argument('<files...>', 'YAML files')
    .option('--check', 'change nothing; fail when an image is not pinned to a digest that its registry has')
    .option('--skip-unresolvable', 'leave references with variables, or on registries that cannot be reached, as they are (with a warning)')
    .action(async (files: string[], options: { check?: boolean; skipUnresolvable?: boolean }, command: Command) =>
      withContext(command, async (context) => {
        const pinOptions: PinOptions = { check: options.check === true, skipUnresolvable: options.skipUnresolvable === true };
        let failed = false;
        let changed = 0;
        for (const file of files) {
          const result = await pinFile(context, file, pinOptions);
          for (const line of result.problems) process.stderr.write(`${line}\n`);
          if (result.problems.length > 0) {
            failed = true;
            if (!pinOptions.check) process.stderr.write(`${file} was not written\n`);
          }
          changed += result.changed;
        }
        if (failed) {
          process.exitCode = 1;
          return;
        }
        if (options.check) {
          if (!context.options.quiet) process.stdout.write('all images are pinned\n');
          return;
        }
        if (!context.options.quiet) process.stdout.write(`pinned ${changed} image reference${changed === 1 ? '' : 's'}\n`);
      }),
    );
}
