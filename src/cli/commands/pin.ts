import type { Command } from 'commander';
import { readFileSync, writeFileSync } from 'node:fs';
import { isMap, isPair, isScalar, isSeq, parseAllDocuments, type Node } from 'yaml';
import { ClientError } from '../../client/index.js';
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

async function pinFile(context: CliContext, file: string, check: boolean): Promise<{ unpinned: string[]; changed: number }> {
  const text = readFileSync(file, 'utf8');
  const fields = findImageFields(text);
  const unpinned: string[] = [];
  const replacements: Array<{ start: number; end: number; text: string }> = [];
  const resolved = new Map<string, string>();
  for (const field of fields) {
    if (isPinned(field.value) || isTemplated(field.value)) continue;
    if (check) {
      unpinned.push(`${file}:${field.line}: ${field.value} is not pinned to a digest`);
      continue;
    }
    let digest = resolved.get(field.value);
    if (!digest) {
      const ref = parseReference(field.value);
      const head = await context.client(ref.registry).headManifest(ref.repository, ref.tag ?? 'latest');
      if (!head) throw new ClientError('manifest-unknown', `manifest unknown: ${field.value} (${file}:${field.line})`, { registry: ref.registry });
      digest = head.digest;
      resolved.set(field.value, digest);
    }
    const source = text.slice(field.start, field.end);
    const quote = source.startsWith('"') || source.startsWith("'") ? source[0]! : '';
    replacements.push({ start: field.start, end: field.end, text: `${quote}${field.value}@${digest}${quote}` });
    if (!context.options.quiet) process.stderr.write(`${file}:${field.line}: ${field.value} -> ${field.value}@${digest}\n`);
  }
  if (replacements.length > 0) {
    let out = text;
    for (const r of replacements.sort((a, b) => b.start - a.start)) out = out.slice(0, r.start) + r.text + out.slice(r.end);
    writeFileSync(file, out);
  }
  return { unpinned, changed: replacements.length };
}

export function registerPin(program: Command): void {
  program
    .command('pin')
    .description('rewrite image references in docker-compose and Kubernetes YAML from tags to name:tag@digest')
    .argument('<files...>', 'YAML files')
    .option('--check', 'change nothing; fail when an image is not pinned to a digest')
    .action(async (files: string[], options: { check?: boolean }, command: Command) =>
      withContext(command, async (context) => {
        const unpinned: string[] = [];
        let changed = 0;
        for (const file of files) {
          const result = await pinFile(context, file, options.check === true);
          unpinned.push(...result.unpinned);
          changed += result.changed;
        }
        if (options.check) {
          for (const line of unpinned) process.stderr.write(`${line}\n`);
          if (unpinned.length > 0) {
            process.exitCode = 1;
            return;
          }
          if (!context.options.quiet) process.stdout.write('all images are pinned\n');
          return;
        }
        if (!context.options.quiet) process.stdout.write(`pinned ${changed} image reference${changed === 1 ? '' : 's'}\n`);
      }),
    );
}
