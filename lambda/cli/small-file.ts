import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/**
 * A small text file keyguard reads beside what it scans (`.keyguardignore`, a baseline), which a repository under
 * scan may hold: so possibly hostile. Only a regular file is read (a symbolic link to `/dev/zero` or a FIFO is
 * refused, and O_NONBLOCK keeps opening a FIFO from waiting for a writer), and only up to `maxBytes`.
 */
export class SmallFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SmallFileError';
  }
}

/**
 * The file's text (UTF-8), or undefined when it does not exist. Throws SmallFileError when it is not a regular file
 * or too large, and the file system's error (with its `code`) when it cannot be opened or read.
 */
export function readSmallText(path: string, maxBytes: number): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const s = fstatSync(fd);
    if (!s.isFile()) throw new SmallFileError('not a regular file: not read');
    if (s.size > maxBytes) throw new SmallFileError(`${s.size} bytes; allowed: at most ${maxBytes}`);
    const bytes = Buffer.alloc(s.size);
    let read = 0;
    while (read < bytes.length) {
      const n = readSync(fd, bytes, read, bytes.length - read, read);
      if (n === 0) break;
      read += n;
    }
    return bytes.subarray(0, read).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
