// Loaded by vitest before every test file (vitest.config.ts).
import '../../common/polyfills.js'
