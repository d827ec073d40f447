/**
 * zod for the code the Lambda functions bundle: `zod/mini` (a fraction of full zod's code to compile, and schemas
 * several times cheaper to build at cold start) with zod's English messages. Mini loads no locale by itself: without
 * one, every message a schema does not set itself reads "Invalid input", where full zod (which registers English on
 * first use) says what was expected. Import it as `import * as z from '../shared/zod'` rather than from 'zod/mini',
 * so that messages stay those of full zod; a star re-export (not a re-exported namespace object) keeps esbuild's
 * tree shaking: a bundle holds only the parts of zod its schemas use.
 */

import { en } from 'zod/locales';
import { config } from 'zod/mini';

config(en());

export * from 'zod/mini';

/**
 * zod/mini's `z` (its whole namespace as one object) is hidden: `import { z }` would make esbuild keep all of zod/mini
 * and every locale (about 400 KB in a bundle). Use `import * as z from '../shared/zod'`.
 */
export declare const z: never;
