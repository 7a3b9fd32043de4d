/** The longest description search shows (Docker Hub's short descriptions are about this long). */
export const MAX_DESCRIPTION_CHARS = 200;

/** The most matches one search considers (Docker Hub caps its results too). */
export const SEARCH_RESULT_CAP = 500;

/** The largest README accepted, in bytes of UTF-8 (Docker Hub allows 25,000 characters): pages stay under 100 KB. */
export const MAX_README_BYTES = 25_000;

/**
 * A README's first paragraph of prose as plain text, for a repository whose images carry no
 * description: headings, images, badges, HTML and code fences are skipped, link text kept.
 * Undefined when there is no such paragraph.
 */
export function readmeSummary(markdown: string): string | undefined {
  const paragraphs = markdown.replace(/\r\n?/g, '\n').replace(/```[\s\S]*?(```|$)/g, '\n\n').split(/\n\s*\n/);
  for (const raw of paragraphs) {
    const text = raw
      .split('\n')
      .filter((line) => !/^\s*(#|>|\||<|[-*_]{3,}\s*$)/.test(line))
      .join(' ')
      .replace(/!\[[^\]]*\]\([^)]*\)/g, '')
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .replace(/<[^>]*>/g, '')
      .replace(/[*_`~]/g, '')
      .replace(/\s+/g, ' ')
      .trim();
    if (text !== '') return clip(text);
  }
  return undefined;
}

/** A description as stored: whitespace collapsed, clipped; undefined when empty. */
export function normalizeDescription(text: string | undefined | null): string | undefined {
  if (text === undefined || text === null) return undefined;
  const collapsed = text.replace(/\s+/g, ' ').trim();
  return collapsed === '' ? undefined : clip(collapsed);
}

function clip(text: string): string {
  return text.length <= MAX_DESCRIPTION_CHARS ? text : `${text.slice(0, MAX_DESCRIPTION_CHARS - 1)}…`;
}

/**
 * The words of what a user typed, lower-cased, at most 16; each must match the start of a word of
 * a name or description. Empty when only punctuation is left. Shared by every MetadataStore, as
 * is the ranking below, so that SQLite and PostgreSQL answer a search alike.
 */
export function searchWords(text: string): string[] {
  return text.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((word) => word !== '').slice(0, 16);
}

/** The full-text query for the words: every word required, the last one as a prefix (search as you type). */
export function ftsQuery(words: readonly string[]): string {
  return words.map((word, i) => (i === words.length - 1 ? `"${word}"*` : `"${word}"`)).join(' AND ');
}

/** Byte order, as SQLite's BINARY collation sorts names. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Best name match first: the exact name, then a last component that is the query, then names
 * that start with it, then names whose components are the words; shorter names before longer.
 */
export function rankByName<T extends { name: string }>(rows: T[], text: string, words: string[]): T[] {
  const score = (name: string): number => {
    const lower = name.toLowerCase();
    if (lower === text) return 0;
    const last = lower.slice(lower.lastIndexOf('/') + 1);
    if (last === text || (words.length === 1 && last === words[0])) return 1;
    if (lower.startsWith(text) || last.startsWith(text)) return 2;
    const components = lower.split(/[^\p{L}\p{N}]+/u);
    return words.every((word) => components.includes(word)) ? 3 : 4;
  };
  return rows
    .map((row) => ({ row, score: score(row.name) }))
    .sort((a, b) => a.score - b.score || a.row.name.length - b.row.name.length || compareText(a.row.name, b.row.name))
    .map((entry) => entry.row);
}
