/**
 * Search words as PostgreSQL's tsvector and tsquery literals. The words are split here rather than
 * by a text search configuration so that they are the words searchWords() sees (letters and
 * digits, case folded), and with diacritics removed as SQLite's FTS5 index does (unicode61,
 * remove_diacritics): "Café" is found by "cafe" and the other way round, whatever the database's
 * locale. Words hold only letters and digits, so they need no escaping inside the quotes.
 */

/** Longer words cannot be tsvector lexemes (2 KB); no description holds one (200 characters). */
const MAX_WORD_BYTES = 2000;

function fold(word: string): string {
  return word.normalize('NFD').replace(/\p{M}/gu, '');
}

/** The distinct words of a description, as a tsvector literal of weight B (A is the name's). */
export function descriptionLexemes(text: string): string {
  const words = new Set(
    text
      .toLowerCase()
      .split(/[^\p{L}\p{N}]+/u)
      .map(fold)
      .filter((word) => word !== '' && Buffer.byteLength(word) <= MAX_WORD_BYTES),
  );
  return [...words].map((word) => `'${word}':1B`).join(' ');
}

/**
 * The query for searchWords(): every word required, the last one as a prefix; with `nameOnly`,
 * every word must be found in the name. Undefined when a word cannot match anything.
 */
export function searchQuery(words: readonly string[], options: { nameOnly: boolean }): string | undefined {
  const folded = words.map(fold);
  if (folded.some((word) => word === '' || Buffer.byteLength(word) > MAX_WORD_BYTES)) return undefined;
  const weight = options.nameOnly ? 'A' : '';
  return folded
    .map((word, i) => {
      const suffix = `${i === folded.length - 1 ? '*' : ''}${weight}`;
      return suffix === '' ? `'${word}'` : `'${word}':${suffix}`;
    })
    .join(' & ');
}
