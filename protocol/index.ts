/** Public surface of the wire protocol (pure: no I/O). */
export * from './constants.js'
export * from './errors.js'
export * from './encoding.js'
export * from './keys.js'
export * from './purl.js'
export * from './statements.js'
export * from './dsse.js'
export * from './frame.js'
