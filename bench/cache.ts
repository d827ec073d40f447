import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** What every generated data set records about how it was made, so a stale one is never reused. */
export interface CachedManifest {
  generatorVersion: number;
  seed: number;
  targetMb: number;
  files: Array<{ path: string }>;
}

/**
 * The manifest of a generated data set under `dir`, when it was made by this generator version, seed and size
 * and every file is still there with the size it was written with; otherwise null (regenerate).
 */
export async function readCachedManifest<M extends CachedManifest>(
  manifestFile: string,
  dir: string,
  expected: { generatorVersion: number; seed: number; targetMb: number },
  sizeOnDisk: (file: M['files'][number]) => number,
): Promise<M | null> {
  let manifest: M;
  try {
    manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as M;
  } catch {
    return null;
  }
  if (
    manifest.generatorVersion !== expected.generatorVersion ||
    manifest.seed !== expected.seed ||
    manifest.targetMb !== expected.targetMb ||
    !Array.isArray(manifest.files)
  ) {
    return null;
  }
  for (const f of manifest.files) {
    const s = await stat(join(dir, f.path)).catch(() => null);
    if (!s || s.size !== sizeOnDisk(f)) return null;
  }
  return manifest;
}
