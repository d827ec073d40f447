/**
 * Atlassian rich text as plain text for the scanner (issue 15 §2): Jira's Atlassian Document Format (ADF, a JSON
 * tree: https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/) and Confluence's storage
 * format (XHTML with ac:/ri: elements). Both come from servers and users we do not trust: the ADF walk is
 * iterative and bounded in depth and nodes, the storage reader is one linear pass with no nesting kept, and both
 * keep what they do not know (an unknown node's text, an unknown element's text) rather than drop it.
 */

/** ADF nodes nested deeper than this are not walked (Atlassian's editors nest far less). */
export const ADF_MAX_DEPTH = 200;
/** ADF nodes walked in one document at most. */
export const ADF_MAX_NODES = 2_000_000;

export interface PlainText {
  text: string;
  /** Part of the document was not read (too deep or too many nodes): said on stderr. */
  truncated: boolean;
}

/** Block nodes: their text ends a line, so a key never runs into the next paragraph's text. */
const ADF_BLOCKS = new Set([
  'paragraph',
  'heading',
  'codeBlock',
  'blockquote',
  'listItem',
  'bulletList',
  'orderedList',
  'table',
  'tableRow',
  'tableCell',
  'tableHeader',
  'panel',
  'rule',
  'mediaSingle',
  'mediaGroup',
  'expand',
  'nestedExpand',
  'decisionList',
  'decisionItem',
  'taskList',
  'taskItem',
  'layoutSection',
  'layoutColumn',
  'blockCard',
  'embedCard',
]);

/** Attributes shown as inline text by the editor (mention, emoji, status, placeholder…). */
const INLINE_ATTRS = ['text', 'shortName'] as const;
/** Attributes holding addresses (cards, media, link marks): scanned on lines of their own after the text. */
const ADDRESS_ATTRS = ['url', 'href'] as const;

type Frame = { node: unknown; depth: number } | { close: string };

/** An ADF document (or any node) as text: text nodes, inline attributes, then link addresses, one a line. */
export function adfToText(doc: unknown): PlainText {
  const out: string[] = [];
  const addresses: string[] = [];
  const stack: Frame[] = [{ node: doc, depth: 0 }];
  let nodes = 0;
  let truncated = false;
  while (stack.length > 0) {
    const frame = stack.pop() as Frame;
    if ('close' in frame) {
      out.push(frame.close);
      continue;
    }
    const { node, depth } = frame;
    if (typeof node === 'string') {
      out.push(node);
      continue;
    }
    if (!node || typeof node !== 'object') continue;
    nodes += 1;
    if (nodes > ADF_MAX_NODES) {
      truncated = true;
      break;
    }
    const children = Array.isArray(node) ? node : (node as { content?: unknown }).content;
    if (!Array.isArray(node)) {
      const n = node as Record<string, unknown>;
      if (typeof n.text === 'string') out.push(n.text);
      if (n.type === 'hardBreak') out.push('\n');
      const attrs = n.attrs && typeof n.attrs === 'object' ? (n.attrs as Record<string, unknown>) : {};
      for (const a of INLINE_ATTRS) {
        const v = attrs[a];
        if (typeof v === 'string' && typeof n.text !== 'string') {
          out.push(v);
          break;
        }
      }
      for (const a of ADDRESS_ATTRS) if (typeof attrs[a] === 'string') addresses.push(attrs[a] as string);
      if (Array.isArray(n.marks))
        for (const m of n.marks) {
          const href = (m as { attrs?: { href?: unknown } } | null)?.attrs?.href;
          if (typeof href === 'string') addresses.push(href);
        }
    }
    if (!Array.isArray(children)) {
      if (!Array.isArray(node) && ADF_BLOCKS.has(String((node as { type?: unknown }).type))) out.push('\n');
      continue;
    }
    if (depth >= ADF_MAX_DEPTH) {
      truncated = true;
      continue;
    }
    const type = Array.isArray(node) ? '' : String((node as { type?: unknown }).type);
    if (ADF_BLOCKS.has(type)) stack.push({ close: '\n' });
    for (let i = children.length - 1; i >= 0; i -= 1) stack.push({ node: children[i], depth: depth + 1 });
  }
  const text = out.join('').replace(/\n{3,}/g, '\n\n');
  return { text: addresses.length > 0 ? `${text}\n${addresses.join('\n')}` : text, truncated };
}

/** Elements that end a line in storage format (HTML blocks and Confluence macro parts). */
const STORAGE_BLOCKS = new Set([
  'p',
  'div',
  'br',
  'li',
  'ul',
  'ol',
  'tr',
  'td',
  'th',
  'table',
  'h1',
  'h2',
  'h3',
  'h4',
  'h5',
  'h6',
  'pre',
  'blockquote',
  'hr',
  'ac:structured-macro',
  'ac:parameter',
  'ac:plain-text-body',
  'ac:rich-text-body',
  'ac:task',
  'ac:layout-cell',
]);

/** Attributes whose values are addresses or macro values a key could be pasted into. */
const STORAGE_ATTRS = new Set(['href', 'src', 'ri:value', 'ri:url', 'ac:name', 'title', 'alt']);

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: ' ',
};

/** HTML character references decoded (numeric ones and the XML five plus nbsp); others left as they are. */
export function decodeEntities(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&(#[0-9]{1,7}|#x[0-9a-fA-F]{1,6}|[a-zA-Z]{2,8});/g, (whole, ref: string) => {
    if (ref.startsWith('#')) {
      const code =
        ref[1] === 'x' || ref[1] === 'X' ? Number.parseInt(ref.slice(2), 16) : Number(ref.slice(1));
      return code > 0 && code <= 0x10ffff && (code < 0xd800 || code > 0xdfff)
        ? String.fromCodePoint(code)
        : whole;
    }
    return NAMED_ENTITIES[ref] ?? whole;
  });
}

/**
 * Confluence storage format as text: character data (entities decoded), CDATA sections as they are (code macro
 * bodies), a line end at each block element, then the values of address-like attributes (href, ri:value…), one a
 * line. One pass over the text; comments and processing instructions are skipped; an unclosed tag or CDATA section
 * is read as text to the end.
 */
export function storageToText(xml: string): string {
  const out: string[] = [];
  const attrs: string[] = [];
  let i = 0;
  const n = xml.length;
  while (i < n) {
    const lt = xml.indexOf('<', i);
    if (lt === -1) {
      out.push(decodeEntities(xml.slice(i)));
      break;
    }
    if (lt > i) out.push(decodeEntities(xml.slice(i, lt)));
    if (xml.startsWith('<![CDATA[', lt)) {
      const end = xml.indexOf(']]>', lt + 9);
      out.push(xml.slice(lt + 9, end === -1 ? n : end));
      i = end === -1 ? n : end + 3;
      continue;
    }
    if (xml.startsWith('<!--', lt)) {
      const end = xml.indexOf('-->', lt + 4);
      i = end === -1 ? n : end + 3;
      continue;
    }
    // A tag: up to the first '>' outside quotes.
    let j = lt + 1;
    let quote = '';
    while (j < n) {
      const c = xml[j];
      if (quote) {
        if (c === quote) quote = '';
      } else if (c === '"' || c === "'") quote = c;
      else if (c === '>') break;
      j += 1;
    }
    if (j >= n) {
      out.push(decodeEntities(xml.slice(lt)));
      break;
    }
    const tag = xml.slice(lt + 1, j);
    const name = /^\/?\s*([A-Za-z][\w:.-]*)/.exec(tag)?.[1]?.toLowerCase() ?? '';
    if (STORAGE_BLOCKS.has(name)) out.push('\n');
    // Names start only after a non-name character (the look-behind), so a long run of name characters is
    // tried once, not from each of its positions: linear in the tag's length.
    if (!tag.startsWith('/') && !tag.startsWith('!') && !tag.startsWith('?')) {
      for (const m of tag.matchAll(/(?<![\w:.-])([\w:.-]+)\s*=\s*("([^"]*)"|'([^']*)')/g)) {
        const attr = (m[1] ?? '').toLowerCase();
        const value = m[3] ?? m[4] ?? '';
        if (STORAGE_ATTRS.has(attr) && value !== '') attrs.push(decodeEntities(value));
      }
    }
    i = j + 1;
  }
  const text = out.join('').replace(/\n{3,}/g, '\n\n');
  return attrs.length > 0 ? `${text}\n${attrs.join('\n')}` : text;
}
