import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { Option } from 'commander';
import { visible } from '../shared/visible-text';
import { messageOf } from './inputs';

/**
 * `--account-names FILE` of `keyguard audit` and `keyguard report`: names for account ids. Decisions record the
 * account id only, so a name comes from outside the audit record: the output of `keyguard inventory --org --json`
 * (one row per key, each with `accountId` and `accountName`), or a JSON object `{"<12 digits>": "<name>"}`.
 *
 * A member account's name is chosen by its administrator: it is text to escape wherever it is shown (the
 * callers show it through `visible()` on a terminal and escape it in HTML), never trusted.
 */

/** Larger than any organization's inventory output is expected to be (20,000 keys are about 15 MB). */
export const MAX_ACCOUNT_NAMES_BYTES = 256 * 1024 * 1024;
/** A longer name is refused: AWS account names are at most 50 characters. */
export const MAX_ACCOUNT_NAME_LENGTH = 256;

const ACCOUNT_ID = /^\d{12}$/;

/** The file cannot be used: bad usage (exit 2), with the option, the file and what is wrong. */
export class AccountNamesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AccountNamesError';
  }
}

function check(where: string, id: unknown, name: unknown, names: Map<string, string>): void {
  if (typeof id !== 'string' || !ACCOUNT_ID.test(id)) {
    throw new AccountNamesError(
      `${where}: accountId: got ${visible(JSON.stringify(id) ?? 'nothing')}; allowed: 12 digits`,
    );
  }
  if (typeof name !== 'string') {
    throw new AccountNamesError(
      `${where}: accountName: got ${visible(JSON.stringify(name) ?? 'nothing')}; allowed: a string`,
    );
  }
  if (name.length > MAX_ACCOUNT_NAME_LENGTH) {
    throw new AccountNamesError(
      `${where}: accountName of ${id}: ${name.length} characters; allowed: at most ${MAX_ACCOUNT_NAME_LENGTH}`,
    );
  }
  if (name === '') return;
  const known = names.get(id);
  if (known !== undefined && known !== name) {
    throw new AccountNamesError(
      `${where}: account ${id} is named ${visible(JSON.stringify(name))}, and ${visible(JSON.stringify(known))} before`,
    );
  }
  names.set(id, name);
}

/** Parses the file's text (see the module comment); `display` names the file in messages. */
export function parseAccountNames(text: string, display: string): Map<string, string> {
  const names = new Map<string, string>();
  const at = `--account-names ${visible(display)}`;
  let whole: unknown;
  try {
    whole = JSON.parse(text);
  } catch {
    whole = undefined; // JSON lines (or not JSON: said line by line below)
  }
  if (whole !== null && typeof whole === 'object' && !Array.isArray(whole) && !('accountId' in whole)) {
    for (const [id, name] of Object.entries(whole)) check(at, id, name, names);
    return names;
  }
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${at}: line ${i + 1}`;
    const row = parseLine(line, where);
    check(where, row.accountId, row.accountName, names);
  });
  return names;
}

function parseLine(line: string, where: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    // The message of JSON.parse may quote the text: it is not repeated.
    throw new AccountNamesError(
      `${where}: not JSON (expected keyguard inventory --org --json output, or {"<account id>": "<name>"})`,
    );
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new AccountNamesError(`${where}: not a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** Reads `--account-names FILE` (relative to cwd); undefined when the option is not given. */
export function readAccountNames(file: string | undefined, cwd: string): Map<string, string> | undefined {
  if (file === undefined) return undefined;
  const display = file.trim();
  if (!display) throw new AccountNamesError('--account-names: must not be empty');
  const path = resolve(cwd, display);
  let text: string;
  try {
    const s = statSync(path);
    if (!s.isFile()) throw new AccountNamesError(`--account-names ${visible(display)}: not a regular file`);
    if (s.size > MAX_ACCOUNT_NAMES_BYTES) {
      throw new AccountNamesError(
        `--account-names ${visible(display)}: ${s.size} bytes; allowed: at most ${MAX_ACCOUNT_NAMES_BYTES}`,
      );
    }
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof AccountNamesError) throw err;
    throw new AccountNamesError(`--account-names ${visible(display)}: cannot read (${messageOf(err)})`);
  }
  return parseAccountNames(text, display);
}

/** `111122223333 (prod)` when the account has a name, else the id: the caller escapes it for where it goes. */
export function accountLabel(accountId: string, names: ReadonlyMap<string, string> | undefined): string {
  const name = names?.get(accountId);
  return name ? `${accountId} (${name})` : accountId;
}

export function accountNamesOption(): Option {
  return new Option(
    '--account-names <file>',
    'names for account ids: the output of keyguard inventory --org --json, or {"<account id>": "<name>"}',
  );
}
