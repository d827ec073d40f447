/**
 * Test only: makes the embedded store's LevelDB fail as a full disk does (`LEVEL_IO_ERROR ... No space left on
 * device`, what classic-level reports for ENOSPC) once a number of writes have succeeded. Load it into the real CLI
 * with `node --require` and KEYGUARD_TEST_ENOSPC_AFTER=<writes>, or call injectEnospc() in-process.
 * Plain CommonJS so that `--require` needs no TypeScript loader.
 */
const { dirname } = require('node:path');

function injectEnospc(after) {
  const path = require.resolve('level', { paths: [dirname(require.resolve('dynalite'))] });
  const proto = require(path).Level.prototype;
  const originals = {};
  let writes = 0;
  for (const name of ['_put', '_del', '_batch']) {
    originals[name] = proto[name];
    proto[name] = async function (...args) {
      writes += 1;
      if (writes > after) {
        const err = new Error(`IO error: ${this.location}/000003.log: No space left on device`);
        err.code = 'LEVEL_IO_ERROR';
        throw err;
      }
      return originals[name].apply(this, args);
    };
  }
  return () => {
    for (const name of Object.keys(originals)) proto[name] = originals[name];
  };
}

const after = process.env.KEYGUARD_TEST_ENOSPC_AFTER;
if (after !== undefined) injectEnospc(Number(after));

module.exports = { injectEnospc };
