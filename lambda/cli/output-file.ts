import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  fsyncSync,
  lstatSync,
  openSync,
  readlinkSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { visible } from '../shared/visible-text';

/**
 * The one way the CLI writes a file (`report --html`, `scan --write-baseline`): into a new temporary file
 * beside the target, then renamed over it, so a reader never sees half a file and a failure leaves the old one.
 *
 * The output path is often in a shared or attacker-writable directory (/tmp, a CI workspace, a checkout), so:
 * - the temporary file is created exclusively (O_CREAT|O_EXCL) without following a symlink (O_NOFOLLOW), mode
 *   0600, under a random name: nothing planted beforehand, at a predictable name or not, can redirect it;
 * - an existing target that is not a regular file is refused, never written through nor replaced by surprise:
 *   a symbolic link (its target would be someone else's file), a FIFO (opening it blocks), a device, a socket
 *   or a directory. With `replaceLink` a symbolic link itself is replaced by the new regular file (rename(2)
 *   replaces the directory entry; the link's target is never opened);
 * - a new file gets mode 0600 (a report names users, owners and decisions: private until shared); an existing
 *   regular file keeps its permission bits;
 * - the temporary file is removed on any failure.
 * A symlink planted at the target between the check and the rename is replaced, not followed: rename never
 * writes through a link.
 */

/** The target can not be written as asked: bad usage, exit 2, with the path and what is there. */
export class OutputFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OutputFileError';
  }
}

export interface OutputFileOptions {
  /** Replace a symbolic link at the path by the new file (never write through it). @default false */
  replaceLink?: boolean;
  /** How the path is named in messages (the argument as given). @default the path */
  display?: string;
  /** The option that asks to replace a link, named in the refusal; null when the command has none. @default '--force' */
  forceOption?: string | null;
}

/** What is at the path, for a refusal: `a FIFO (named pipe)`, `a character device`… */
function kind(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Checks that `path` may be written: its directory exists, and it is absent, a regular file, or (with
 * `replaceLink`) a symbolic link. Returns what is there now (null: nothing). Call it before expensive work, to
 * fail fast; `writeOutputFile` checks again.
 */
export function checkOutputTarget(path: string, options: OutputFileOptions = {}): Stats | null {
  const shown = visible(options.display ?? path);
  const st = lstatOrNull(path);
  if (st && !st.isFile()) {
    if (st.isSymbolicLink()) {
      if (!options.replaceLink) {
        let to = '';
        try {
          to = ` (to ${visible(readlinkSync(path))})`;
        } catch {
          // The link vanished or cannot be read: the refusal stands without its target.
        }
        const force = options.forceOption === undefined ? '--force' : options.forceOption;
        throw new OutputFileError(
          `${shown} is a symbolic link${to}: refusing to write through it; remove it or name another file` +
            (force ? `, or pass ${force} to replace the link itself with a regular file` : ''),
        );
      }
    } else {
      throw new OutputFileError(`${shown} is ${kind(st)}, not a regular file: name a regular file`);
    }
  }
  const dir = dirname(path);
  let dirStat: Stats | null = null;
  try {
    dirStat = statSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (!dirStat?.isDirectory()) {
    throw new OutputFileError(`directory ${visible(dirname(options.display ?? path))} does not exist`);
  }
  return st;
}

const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const TEMP_FLAGS = constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | O_NOFOLLOW;

/** A new temporary file in `dir`, created exclusively, never through a link; retried on the rare collision. */
function createTemp(dir: string, name: string): { fd: number; temp: string } {
  for (let attempt = 0; ; attempt++) {
    const temp = join(dir, `.${name}.${randomBytes(12).toString('hex')}.tmp`);
    try {
      return { fd: openSync(temp, TEMP_FLAGS, 0o600), temp };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 4) throw err;
    }
  }
}

/** Writes `content` to `path` atomically (see the file comment); throws OutputFileError on a refused target. */
export function writeOutputFile(path: string, content: string, options: OutputFileOptions = {}): void {
  const before = checkOutputTarget(path, options);
  const { fd, temp } = createTemp(dirname(path), basename(path));
  let closed = false;
  try {
    writeFileSync(fd, content, 'utf8');
    if (before?.isFile()) fchmodSync(fd, before.mode & 0o777);
    fsyncSync(fd);
    closeSync(fd);
    closed = true;
    // Again just before the rename: what appeared meanwhile is refused the same way.
    checkOutputTarget(path, options);
    renameSync(temp, path);
  } catch (err) {
    if (!closed) {
      try {
        closeSync(fd);
      } catch {
        // The write already failed: that error is the one to report.
      }
    }
    rmSync(temp, { force: true });
    throw err;
  }
}
